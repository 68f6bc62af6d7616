#include "vcpu/vcpu_state.h"

#include "absl/strings/str_cat.h"

namespace amalgam::vcpu {
namespace {

// Prefixes a failed step's status with its name, keeping the code.
absl::Status Step(const char* step, absl::Status s) {
  if (s.ok()) return s;
  return absl::Status(s.code(),
                      absl::StrCat("restoring vCPU state, step ", step, ": ", s.message()));
}

template <typename T>
absl::Status Take(absl::StatusOr<T> value, T* out) {
  if (!value.ok()) return value.status();
  *out = std::move(*value);
  return absl::OkStatus();
}

absl::Status Capture(const char* what, absl::Status s) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat("capturing vCPU state, ", what, ": ", s.message()));
}

}  // namespace

absl::StatusOr<std::vector<uint32_t>> ReadableMsrs(const Vcpu& vcpu,
                                                   absl::Span<const uint32_t> msr_indices) {
  std::vector<uint32_t> readable;
  for (uint32_t index : msr_indices) {
    const uint32_t one[] = {index};
    absl::StatusOr<std::vector<kvm_msr_entry>> r = vcpu.GetMsrs(one);
    if (r.ok()) {
      readable.push_back(index);
    } else if (r.status().code() != absl::StatusCode::kInternal) {
      return r.status();  // the ioctl itself failed, not this MSR
    }
  }
  return readable;
}

absl::StatusOr<VcpuState> CaptureVcpuState(const Vcpu& vcpu, absl::Span<const uint32_t> msr_indices,
                                           bool has_lapic) {
  VcpuState st;
  absl::Status s;
  if (s = Capture("cpuid", Take(vcpu.GetCpuid2(), &st.cpuid)); !s.ok()) return s;
  if (s = Capture("regs", Take(vcpu.GetRegs(), &st.regs)); !s.ok()) return s;
  if (s = Capture("sregs", Take(vcpu.GetSregs(), &st.sregs)); !s.ok()) return s;
  if (vcpu.has_sregs2()) {
    if (s = Capture("sregs2", Take(vcpu.GetSregs2(), &st.sregs2)); !s.ok()) return s;
    st.has_sregs2 = true;
  }
  if (s = Capture("fpu", Take(vcpu.GetFpu(), &st.fpu)); !s.ok()) return s;
  if (vcpu.xsave_size() > 0) {
    if (s = Capture("xsave", Take(vcpu.GetXsave(), &st.xsave)); !s.ok()) return s;
  }
  if (vcpu.has_xcrs()) {
    if (s = Capture("xcrs", Take(vcpu.GetXcrs(), &st.xcrs)); !s.ok()) return s;
    st.has_xcrs = true;
  }
  if (has_lapic) {
    if (s = Capture("lapic", Take(vcpu.GetLapic(), &st.lapic)); !s.ok()) return s;
    st.has_lapic = true;
  }
  if (s = Capture("msrs", Take(vcpu.GetMsrs(msr_indices), &st.msrs)); !s.ok()) return s;
  if (s = Capture("mp_state", Take(vcpu.GetMpState(), &st.mp_state)); !s.ok()) return s;
  if (s = Capture("events", Take(vcpu.GetVcpuEvents(), &st.events)); !s.ok()) return s;
  if (s = Capture("debugregs", Take(vcpu.GetDebugRegs(), &st.debugregs)); !s.ok()) return s;
  return st;
}

absl::Status RestoreVcpuState(Vcpu& vcpu, const VcpuState& st) {
  // CPUID first: it bounds XCR0, the XSAVE layout and which MSRs exist.
  if (absl::Status s = Step("cpuid", vcpu.SetCpuid2(st.cpuid)); !s.ok()) return s;
  // SREGS before REGS (CR0/CR4/EFER/APIC_BASE decide how the rest is interpreted).
  if (st.has_sregs2 && vcpu.has_sregs2()) {
    if (absl::Status s = Step("sregs2", vcpu.SetSregs2(st.sregs2)); !s.ok()) return s;
  } else {
    if (absl::Status s = Step("sregs", vcpu.SetSregs(st.sregs)); !s.ok()) return s;
  }
  if (absl::Status s = Step("regs", vcpu.SetRegs(st.regs)); !s.ok()) return s;
  if (st.has_xcrs) {
    if (absl::Status s = Step("xcrs", vcpu.SetXcrs(st.xcrs)); !s.ok()) return s;
  }
  if (!st.xsave.empty()) {
    if (absl::Status s = Step("xsave", vcpu.SetXsave(st.xsave)); !s.ok()) return s;
  } else {
    if (absl::Status s = Step("fpu", vcpu.SetFpu(st.fpu)); !s.ok()) return s;
  }
  if (absl::Status s = Step("msrs", vcpu.SetMsrs(st.msrs)); !s.ok()) return s;
  // The LAPIC after APIC_BASE (in sregs); a TSC-deadline MSR would belong after this.
  if (st.has_lapic) {
    if (absl::Status s = Step("lapic", vcpu.SetLapic(st.lapic)); !s.ok()) return s;
  }
  if (absl::Status s = Step("vcpu_events", vcpu.SetVcpuEvents(st.events)); !s.ok()) return s;
  // Mandatory with an in-kernel LAPIC: APs are created UNINITIALIZED.
  if (absl::Status s = Step("mp_state", vcpu.SetMpState(st.mp_state)); !s.ok()) return s;
  return Step("debugregs", vcpu.SetDebugRegs(st.debugregs));
}

}  // namespace amalgam::vcpu
