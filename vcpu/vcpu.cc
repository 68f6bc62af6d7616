#include "vcpu/vcpu.h"

#include <sys/ioctl.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "absl/strings/str_format.h"
#include "vcpu/errno_status.h"

namespace amalgam::vcpu {
namespace {

// ioctl wrappers: `what` names the request in errors.
template <typename T>
absl::StatusOr<T> Get(int fd, unsigned long request, const char* what) {
  T value{};
  if (::ioctl(fd, request, &value) < 0) return ErrnoStatus(errno, what);
  return value;
}

template <typename T>
absl::Status Set(int fd, unsigned long request, const T& value, const char* what) {
  if (::ioctl(fd, request, &value) < 0) return ErrnoStatus(errno, what);
  return absl::OkStatus();
}

// kvm_msrs / kvm_cpuid2 are headers followed by a flexible array: build them in u64 storage
// so the entries are aligned.
template <typename Header, typename Entry>
std::vector<uint64_t> FlexBuffer(size_t n) {
  return std::vector<uint64_t>((sizeof(Header) + n * sizeof(Entry) + 7) / 8, 0);
}

}  // namespace

Vcpu::~Vcpu() {
  if (run_ != nullptr) ::munmap(run_, run_size_);
}

absl::StatusOr<Vcpu::RunResult> Vcpu::RunOnce() {
  if (::ioctl(fd_.get(), KVM_RUN, 0) == 0) return RunResult::kExited;
  int err = errno;
  if (err == EINTR || err == EAGAIN) return RunResult::kInterrupted;
  // KVM_EXIT_MEMORY_FAULT (39, newer than Debian 12's header): EFAULT with the guest range
  // whose host memory could not be faulted in (an unmapped or userfaultfd-broken slot).
  constexpr uint32_t kExitMemoryFault = 39;
  if (err == EFAULT && run_->exit_reason == kExitMemoryFault) {
    uint64_t fault[3];  // flags, gpa, size: the union's first bytes
    std::memcpy(fault, reinterpret_cast<const uint8_t*>(run_) + offsetof(kvm_run, hw),
                sizeof(fault));
    return absl::InternalError(absl::StrFormat(
        "KVM_RUN on vCPU %u: memory fault at gpa %#x size %#x (flags %#x): the host memory "
        "behind this guest range cannot be accessed",
        id_, fault[1], fault[2], fault[0]));
  }
  return ErrnoStatus(err, absl::StrFormat("KVM_RUN on vCPU %u", id_));
}

absl::StatusOr<kvm_regs> Vcpu::GetRegs() const {
  return Get<kvm_regs>(fd_.get(), KVM_GET_REGS, "KVM_GET_REGS");
}
absl::Status Vcpu::SetRegs(const kvm_regs& regs) {
  return Set(fd_.get(), KVM_SET_REGS, regs, "KVM_SET_REGS");
}
absl::StatusOr<kvm_sregs> Vcpu::GetSregs() const {
  return Get<kvm_sregs>(fd_.get(), KVM_GET_SREGS, "KVM_GET_SREGS");
}
absl::Status Vcpu::SetSregs(const kvm_sregs& sregs) {
  return Set(fd_.get(), KVM_SET_SREGS, sregs, "KVM_SET_SREGS");
}
absl::StatusOr<kvm_sregs2> Vcpu::GetSregs2() const {
  if (!has_sregs2_) return absl::UnimplementedError("KVM_GET_SREGS2: no KVM_CAP_SREGS2");
  return Get<kvm_sregs2>(fd_.get(), KVM_GET_SREGS2, "KVM_GET_SREGS2");
}
absl::Status Vcpu::SetSregs2(const kvm_sregs2& sregs) {
  if (!has_sregs2_) return absl::UnimplementedError("KVM_SET_SREGS2: no KVM_CAP_SREGS2");
  return Set(fd_.get(), KVM_SET_SREGS2, sregs, "KVM_SET_SREGS2");
}
absl::StatusOr<kvm_fpu> Vcpu::GetFpu() const {
  return Get<kvm_fpu>(fd_.get(), KVM_GET_FPU, "KVM_GET_FPU");
}
absl::Status Vcpu::SetFpu(const kvm_fpu& fpu) {
  return Set(fd_.get(), KVM_SET_FPU, fpu, "KVM_SET_FPU");
}

absl::StatusOr<std::vector<uint8_t>> Vcpu::GetXsave() const {
  if (xsave_size_ == 0) return absl::UnimplementedError("KVM_GET_XSAVE: no KVM_CAP_XSAVE");
  std::vector<uint8_t> buf(xsave_size_, 0);
  unsigned long request = has_xsave2_ ? KVM_GET_XSAVE2 : KVM_GET_XSAVE;
  if (::ioctl(fd_.get(), request, buf.data()) < 0) {
    return ErrnoStatus(errno, has_xsave2_ ? "KVM_GET_XSAVE2" : "KVM_GET_XSAVE");
  }
  return buf;
}

absl::Status Vcpu::SetXsave(absl::Span<const uint8_t> xsave) {
  if (xsave_size_ == 0) return absl::UnimplementedError("KVM_SET_XSAVE: no KVM_CAP_XSAVE");
  if (xsave.size() != xsave_size_) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "KVM_SET_XSAVE: state has %u bytes, this host's XSAVE area is %u bytes (KVM_CAP_XSAVE2); "
        "restore on a host with the same CPU features",
        xsave.size(), xsave_size_));
  }
  // KVM reads xsave_size() bytes; copy into a buffer we own so alignment is right.
  std::vector<uint8_t> buf(xsave.begin(), xsave.end());
  if (::ioctl(fd_.get(), KVM_SET_XSAVE, buf.data()) < 0) return ErrnoStatus(errno, "KVM_SET_XSAVE");
  return absl::OkStatus();
}

absl::StatusOr<kvm_xcrs> Vcpu::GetXcrs() const {
  if (!has_xcrs_) return absl::UnimplementedError("KVM_GET_XCRS: no KVM_CAP_XCRS");
  return Get<kvm_xcrs>(fd_.get(), KVM_GET_XCRS, "KVM_GET_XCRS");
}
absl::Status Vcpu::SetXcrs(const kvm_xcrs& xcrs) {
  if (!has_xcrs_) return absl::UnimplementedError("KVM_SET_XCRS: no KVM_CAP_XCRS");
  return Set(fd_.get(), KVM_SET_XCRS, xcrs, "KVM_SET_XCRS");
}
absl::StatusOr<kvm_lapic_state> Vcpu::GetLapic() const {
  return Get<kvm_lapic_state>(fd_.get(), KVM_GET_LAPIC, "KVM_GET_LAPIC (needs the irqchip)");
}
absl::Status Vcpu::SetLapic(const kvm_lapic_state& lapic) {
  return Set(fd_.get(), KVM_SET_LAPIC, lapic, "KVM_SET_LAPIC");
}

absl::StatusOr<std::vector<kvm_msr_entry>> Vcpu::GetMsrs(absl::Span<const uint32_t> indices) const {
  std::vector<uint64_t> buf = FlexBuffer<kvm_msrs, kvm_msr_entry>(indices.size());
  auto* msrs = reinterpret_cast<kvm_msrs*>(buf.data());
  msrs->nmsrs = static_cast<uint32_t>(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) msrs->entries[i].index = indices[i];
  int n = ::ioctl(fd_.get(), KVM_GET_MSRS, msrs);
  if (n < 0) return ErrnoStatus(errno, "KVM_GET_MSRS");
  if (static_cast<size_t>(n) != indices.size()) {
    return absl::InternalError(
        absl::StrFormat("KVM_GET_MSRS read %d of %u MSRs; MSR %#x is not readable on this vCPU", n,
                        indices.size(), indices[n]));
  }
  return std::vector<kvm_msr_entry>(msrs->entries, msrs->entries + n);
}

absl::Status Vcpu::SetMsrs(absl::Span<const kvm_msr_entry> entries) {
  std::vector<uint64_t> buf = FlexBuffer<kvm_msrs, kvm_msr_entry>(entries.size());
  auto* msrs = reinterpret_cast<kvm_msrs*>(buf.data());
  msrs->nmsrs = static_cast<uint32_t>(entries.size());
  std::copy(entries.begin(), entries.end(), msrs->entries);
  int n = ::ioctl(fd_.get(), KVM_SET_MSRS, msrs);
  if (n < 0) return ErrnoStatus(errno, "KVM_SET_MSRS");
  if (static_cast<size_t>(n) != entries.size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "KVM_SET_MSRS wrote %d of %u MSRs; KVM refused MSR %#x = %#x (and did not try the rest)", n,
        entries.size(), entries[n].index, entries[n].data));
  }
  return absl::OkStatus();
}

absl::StatusOr<kvm_mp_state> Vcpu::GetMpState() const {
  return Get<kvm_mp_state>(fd_.get(), KVM_GET_MP_STATE, "KVM_GET_MP_STATE");
}
absl::Status Vcpu::SetMpState(const kvm_mp_state& state) {
  return Set(fd_.get(), KVM_SET_MP_STATE, state, "KVM_SET_MP_STATE");
}
absl::StatusOr<kvm_vcpu_events> Vcpu::GetVcpuEvents() const {
  return Get<kvm_vcpu_events>(fd_.get(), KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS");
}
absl::Status Vcpu::SetVcpuEvents(const kvm_vcpu_events& events) {
  return Set(fd_.get(), KVM_SET_VCPU_EVENTS, events, "KVM_SET_VCPU_EVENTS");
}
absl::StatusOr<kvm_debugregs> Vcpu::GetDebugRegs() const {
  return Get<kvm_debugregs>(fd_.get(), KVM_GET_DEBUGREGS, "KVM_GET_DEBUGREGS");
}
absl::Status Vcpu::SetDebugRegs(const kvm_debugregs& regs) {
  return Set(fd_.get(), KVM_SET_DEBUGREGS, regs, "KVM_SET_DEBUGREGS");
}

absl::Status Vcpu::SetCpuid2(const CpuidEntries& entries) {
  std::vector<uint64_t> buf = FlexBuffer<kvm_cpuid2, kvm_cpuid_entry2>(entries.size());
  auto* cpuid = reinterpret_cast<kvm_cpuid2*>(buf.data());
  cpuid->nent = static_cast<uint32_t>(entries.size());
  std::copy(entries.begin(), entries.end(), cpuid->entries);
  if (::ioctl(fd_.get(), KVM_SET_CPUID2, cpuid) < 0) {
    int err = errno;
    return ErrnoStatus(
        err, absl::StrFormat("KVM_SET_CPUID2 (%u entries) on vCPU %u%s", entries.size(), id_,
                             err == EINVAL ? " (after KVM_RUN only an identical "
                                             "table is accepted)"
                                           : ""));
  }
  return absl::OkStatus();
}

absl::StatusOr<CpuidEntries> Vcpu::GetCpuid2() const {
  for (uint32_t n = 64; n <= 4096; n *= 2) {
    std::vector<uint64_t> buf = FlexBuffer<kvm_cpuid2, kvm_cpuid_entry2>(n);
    auto* cpuid = reinterpret_cast<kvm_cpuid2*>(buf.data());
    cpuid->nent = n;
    if (::ioctl(fd_.get(), KVM_GET_CPUID2, cpuid) == 0) {
      return CpuidEntries(cpuid->entries, cpuid->entries + cpuid->nent);
    }
    if (errno != E2BIG) return ErrnoStatus(errno, "KVM_GET_CPUID2");
  }
  return absl::InternalError("KVM_GET_CPUID2: more than 4096 entries");
}

absl::StatusOr<kvm_translation> Vcpu::Translate(uint64_t linear_address) const {
  kvm_translation tr{};
  tr.linear_address = linear_address;
  if (::ioctl(fd_.get(), KVM_TRANSLATE, &tr) < 0) return ErrnoStatus(errno, "KVM_TRANSLATE");
  return tr;
}

}  // namespace amalgam::vcpu
