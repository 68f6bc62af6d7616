// VcpuState: the full architectural state of one x86 vCPU (what moves when a vCPU migrates or a
// VM is snapshotted), its capture/restore through KVM, and a versioned binary encoding.
// Thread-safety: VcpuState is a value type; Capture/Restore need the vCPU stopped (not in
// KVM_RUN, with no PIO/MMIO pending: see VcpuRunner::CompletePendingIo()).
#ifndef AMALGAM_VCPU_VCPU_STATE_H_
#define AMALGAM_VCPU_VCPU_STATE_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "vcpu/cpuid.h"
#include "vcpu/kvm_uapi.h"
#include "vcpu/vcpu.h"

namespace amalgam::vcpu {

struct VcpuState {
  CpuidEntries cpuid;  // restored first; must be identical on both sides
  kvm_regs regs{};
  bool has_sregs2 = false;  // sregs2 (with PDPTRs) preferred; sregs always present
  kvm_sregs2 sregs2{};
  kvm_sregs sregs{};
  kvm_fpu fpu{};               // legacy view, used only when xsave is empty
  std::vector<uint8_t> xsave;  // KVM_GET_XSAVE2 bytes; empty without XSAVE support
  bool has_xcrs = false;
  kvm_xcrs xcrs{};
  bool has_lapic = false;  // only with the in-kernel irqchip
  kvm_lapic_state lapic{};
  std::vector<kvm_msr_entry> msrs;
  kvm_mp_state mp_state{};
  kvm_vcpu_events events{};
  kvm_debugregs debugregs{};
};

// The subset of `msr_indices` this vCPU can actually read (KVM_GET_MSR_INDEX_LIST may list MSRs
// a given CPU model refuses). Probe once per VM, then capture with the result.
absl::StatusOr<std::vector<uint32_t>> ReadableMsrs(const Vcpu& vcpu,
                                                   absl::Span<const uint32_t> msr_indices);

// Reads everything. `msr_indices` is usually Kvm::GetMsrIndexList(); with `has_lapic` false the
// LAPIC is skipped (no in-kernel irqchip).
absl::StatusOr<VcpuState> CaptureVcpuState(const Vcpu& vcpu, absl::Span<const uint32_t> msr_indices,
                                           bool has_lapic = true);

// Writes everything in the order KVM needs: CPUID, SREGS2/SREGS, REGS, XCRS, XSAVE/FPU, MSRS,
// LAPIC, VCPU_EVENTS, MP_STATE, DEBUGREGS. Errors name the step that failed.
absl::Status RestoreVcpuState(Vcpu& vcpu, const VcpuState& state);

// Versioned, length-prefixed binary encoding with a magic and a checksum per record.
std::vector<uint8_t> SerializeVcpuState(const VcpuState& state);
// Never crashes on untrusted bytes: DATA_LOSS for checksum/truncation, INVALID_ARGUMENT for a
// malformed or inconsistent record, UNIMPLEMENTED for an unknown version.
absl::StatusOr<VcpuState> DeserializeVcpuState(absl::Span<const uint8_t> bytes);

}  // namespace amalgam::vcpu

#endif  // AMALGAM_VCPU_VCPU_STATE_H_
