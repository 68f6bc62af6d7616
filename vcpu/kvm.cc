#include "vcpu/kvm.h"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "vcpu/errno_status.h"

namespace amalgam::vcpu {
namespace {

constexpr int kKvmApiVersion = 12;

constexpr Capability kDefaultRequired[] = {
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
    {KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
    {KVM_CAP_VCPU_EVENTS, "KVM_CAP_VCPU_EVENTS"},
    {KVM_CAP_DEBUGREGS, "KVM_CAP_DEBUGREGS"},
    {KVM_CAP_SIGNAL_MSI, "KVM_CAP_SIGNAL_MSI"},
    {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
    {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
};

}  // namespace

absl::Span<const Capability> DefaultRequiredCapabilities() { return kDefaultRequired; }

absl::StatusOr<std::unique_ptr<Kvm>> Kvm::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT || err == ENODEV || err == ENXIO) {
      return absl::UnavailableError(absl::StrCat(
          "no ", path,
          ": KVM is not available on this host (load kvm_intel/kvm_amd or enable nested "
          "virtualization)"));
    }
    if (err == EACCES || err == EPERM) {
      return absl::PermissionDeniedError(absl::StrCat(
          "cannot open ", path, ": permission denied; add the user to the `kvm` group (",
          "sudo usermod -aG kvm $USER, then log in again) or run as root"));
    }
    return ErrnoStatus(err, absl::StrCat("open ", path));
  }
  ScopedFd owned(fd);
  int version = ::ioctl(fd, KVM_GET_API_VERSION, 0);
  if (version != kKvmApiVersion) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": KVM_GET_API_VERSION is ", version,
                                                      ", this VMM needs ", kKvmApiVersion,
                                                      " (is this really a KVM device?)"));
  }
  int mmap_size = ::ioctl(fd, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (mmap_size < static_cast<int>(sizeof(kvm_run))) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": KVM_GET_VCPU_MMAP_SIZE returned ", mmap_size));
  }
  return std::unique_ptr<Kvm>(new Kvm(std::move(owned), path, mmap_size));
}

int Kvm::CheckExtension(unsigned int cap) const {
  int r = ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap);
  return r < 0 ? 0 : r;
}

absl::Status Kvm::CheckRequiredCapabilities(absl::Span<const Capability> caps) const {
  std::vector<std::string> missing;
  for (const Capability& cap : caps) {
    if (CheckExtension(cap.id) <= 0) missing.push_back(cap.name);
  }
  if (missing.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat(path_, " lacks required KVM capabilities: ", absl::StrJoin(missing, ", "),
                   " (a newer host kernel is needed)"));
}

absl::StatusOr<CpuidEntries> Kvm::GetSupportedCpuid() const {
  // KVM fails with E2BIG until the buffer is large enough; 256 entries is plenty today.
  for (uint32_t n = 64; n <= 4096; n *= 2) {
    std::vector<uint8_t> buf(sizeof(kvm_cpuid2) + n * sizeof(kvm_cpuid_entry2));
    auto* cpuid = reinterpret_cast<kvm_cpuid2*>(buf.data());
    cpuid->nent = n;
    if (::ioctl(fd_.get(), KVM_GET_SUPPORTED_CPUID, cpuid) == 0) {
      return CpuidEntries(cpuid->entries, cpuid->entries + cpuid->nent);
    }
    if (errno != E2BIG) return ErrnoStatus(errno, "KVM_GET_SUPPORTED_CPUID");
  }
  return absl::InternalError("KVM_GET_SUPPORTED_CPUID: more than 4096 entries");
}

absl::StatusOr<std::vector<uint32_t>> Kvm::GetMsrIndexList() const {
  kvm_msr_list probe{};
  probe.nmsrs = 0;
  // The first call fails with E2BIG and reports the count.
  if (::ioctl(fd_.get(), KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG) {
    return ErrnoStatus(errno, "KVM_GET_MSR_INDEX_LIST");
  }
  std::vector<uint32_t> buf(1 + probe.nmsrs + 16);
  auto* list = reinterpret_cast<kvm_msr_list*>(buf.data());
  list->nmsrs = probe.nmsrs + 16;
  if (::ioctl(fd_.get(), KVM_GET_MSR_INDEX_LIST, list) < 0) {
    return ErrnoStatus(errno, "KVM_GET_MSR_INDEX_LIST");
  }
  return std::vector<uint32_t>(list->indices, list->indices + list->nmsrs);
}

int Kvm::MaxVcpus() const {
  int max = CheckExtension(KVM_CAP_MAX_VCPUS);
  if (max > 0) return max;
  int nr = CheckExtension(KVM_CAP_NR_VCPUS);
  return nr > 0 ? nr : 4;  // the KVM API documents 4 when neither is reported
}

}  // namespace amalgam::vcpu
