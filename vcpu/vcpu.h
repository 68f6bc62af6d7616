// Vcpu: one KVM vCPU fd and its mmapped kvm_run: typed get/set of every piece of register state.
// Ownership: owns the fd and the kvm_run mapping. Thread-safety: KVM serializes ioctls on a vCPU
// (an ioctl from another thread blocks while the vCPU is in KVM_RUN; kick it first); run() is
// shared with the kernel and is only touched by the thread that runs the vCPU (and Kick()).
#ifndef AMALGAM_VCPU_VCPU_H_
#define AMALGAM_VCPU_VCPU_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "vcpu/cpuid.h"
#include "vcpu/kvm_uapi.h"
#include "vcpu/scoped_fd.h"

namespace amalgam::vcpu {

class Vcpu {
 public:
  ~Vcpu();
  Vcpu(const Vcpu&) = delete;
  Vcpu& operator=(const Vcpu&) = delete;

  uint32_t id() const { return id_; }
  int fd() const { return fd_.get(); }
  kvm_run* run() const { return run_; }
  size_t run_size() const { return run_size_; }

  // Optional state APIs, detected from the VM's capabilities at creation.
  bool has_sregs2() const { return has_sregs2_; }
  // Bytes of KVM_GET_XSAVE2's buffer (>= sizeof(kvm_xsave)); 0 without KVM_CAP_XSAVE.
  uint32_t xsave_size() const { return xsave_size_; }
  bool has_xcrs() const { return has_xcrs_; }

  // One KVM_RUN ioctl. kExited: run()->exit_reason says why. kInterrupted: KVM_RUN returned
  // EINTR/EAGAIN (a signal or immediate_exit; this is how a kick shows up). See VcpuRunner.
  enum class RunResult { kExited, kInterrupted };
  absl::StatusOr<RunResult> RunOnce();

  absl::StatusOr<kvm_regs> GetRegs() const;
  absl::Status SetRegs(const kvm_regs& regs);
  absl::StatusOr<kvm_sregs> GetSregs() const;
  absl::Status SetSregs(const kvm_sregs& sregs);
  absl::StatusOr<kvm_sregs2> GetSregs2() const;  // UNIMPLEMENTED without KVM_CAP_SREGS2
  absl::Status SetSregs2(const kvm_sregs2& sregs);
  absl::StatusOr<kvm_fpu> GetFpu() const;
  absl::Status SetFpu(const kvm_fpu& fpu);
  // XSAVE area as raw bytes of xsave_size() (KVM_GET_XSAVE2 when available).
  absl::StatusOr<std::vector<uint8_t>> GetXsave() const;
  absl::Status SetXsave(absl::Span<const uint8_t> xsave);
  absl::StatusOr<kvm_xcrs> GetXcrs() const;
  absl::Status SetXcrs(const kvm_xcrs& xcrs);
  absl::StatusOr<kvm_lapic_state> GetLapic() const;  // needs the in-kernel irqchip
  absl::Status SetLapic(const kvm_lapic_state& lapic);
  // Reads the given MSRs; INTERNAL naming the first MSR KVM refused.
  absl::StatusOr<std::vector<kvm_msr_entry>> GetMsrs(absl::Span<const uint32_t> indices) const;
  // Writes all entries; KVM stops at the first failure: INVALID_ARGUMENT naming that MSR.
  absl::Status SetMsrs(absl::Span<const kvm_msr_entry> entries);
  absl::StatusOr<kvm_mp_state> GetMpState() const;
  absl::Status SetMpState(const kvm_mp_state& state);
  absl::StatusOr<kvm_vcpu_events> GetVcpuEvents() const;
  absl::Status SetVcpuEvents(const kvm_vcpu_events& events);
  absl::StatusOr<kvm_debugregs> GetDebugRegs() const;
  absl::Status SetDebugRegs(const kvm_debugregs& regs);
  absl::Status SetCpuid2(const CpuidEntries& entries);
  absl::StatusOr<CpuidEntries> GetCpuid2() const;
  // Guest-virtual -> guest-physical through the vCPU's current page tables (KVM_TRANSLATE).
  absl::StatusOr<kvm_translation> Translate(uint64_t linear_address) const;

 private:
  friend class Vm;
  Vcpu(uint32_t id, ScopedFd fd, kvm_run* run, size_t run_size)
      : id_(id), fd_(std::move(fd)), run_(run), run_size_(run_size) {}

  uint32_t id_;
  ScopedFd fd_;
  kvm_run* run_;
  size_t run_size_;
  bool has_sregs2_ = false;
  uint32_t xsave_size_ = 0;
  bool has_xsave2_ = false;
  bool has_xcrs_ = false;
};

}  // namespace amalgam::vcpu

#endif  // AMALGAM_VCPU_VCPU_H_
