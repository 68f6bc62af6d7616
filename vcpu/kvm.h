// Kvm: the /dev/kvm system fd: API version, capabilities, supported CPUID and MSR index list.
// Ownership: owns the fd (RAII). Thread-safety: all methods are const and thread-safe.
#ifndef AMALGAM_VCPU_KVM_H_
#define AMALGAM_VCPU_KVM_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "vcpu/cpuid.h"
#include "vcpu/kvm_uapi.h"
#include "vcpu/scoped_fd.h"

namespace amalgam::vcpu {

// A KVM capability the caller needs, with a human-readable name for error messages.
struct Capability {
  unsigned int id;  // KVM_CAP_*
  const char* name;
};

// What a VMM built on this library needs from KVM (x86): checked by CheckRequiredCapabilities().
absl::Span<const Capability> DefaultRequiredCapabilities();

class Kvm {
 public:
  static constexpr const char* kDefaultPath = "/dev/kvm";

  // Opens the KVM device and checks KVM_GET_API_VERSION == 12. Errors:
  //   UNAVAILABLE       the device does not exist (KVM not loaded / no nested virtualization)
  //   PERMISSION_DENIED EACCES/EPERM (user not in the `kvm` group)
  //   FAILED_PRECONDITION wrong API version
  static absl::StatusOr<std::unique_ptr<Kvm>> Open(const std::string& path = kDefaultPath);

  Kvm(const Kvm&) = delete;
  Kvm& operator=(const Kvm&) = delete;

  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }

  // KVM_CHECK_EXTENSION on the system fd: 0 when unsupported, else the capability's value.
  int CheckExtension(unsigned int cap) const;

  // OK, or FAILED_PRECONDITION listing every missing capability by name.
  absl::Status CheckRequiredCapabilities(
      absl::Span<const Capability> caps = DefaultRequiredCapabilities()) const;

  // KVM_GET_SUPPORTED_CPUID (grows the buffer on E2BIG).
  absl::StatusOr<CpuidEntries> GetSupportedCpuid() const;
  // KVM_GET_MSR_INDEX_LIST: the MSRs that make up a vCPU's saveable state.
  absl::StatusOr<std::vector<uint32_t>> GetMsrIndexList() const;

  // Hard limit of vCPUs per VM (KVM_CAP_MAX_VCPUS, falling back to KVM_CAP_NR_VCPUS, then 4).
  int MaxVcpus() const;
  // Size of the per-vCPU kvm_run mapping (KVM_GET_VCPU_MMAP_SIZE), cached at Open().
  int VcpuMmapSize() const { return vcpu_mmap_size_; }

 private:
  Kvm(ScopedFd fd, std::string path, int vcpu_mmap_size)
      : fd_(std::move(fd)), path_(std::move(path)), vcpu_mmap_size_(vcpu_mmap_size) {}

  ScopedFd fd_;
  std::string path_;
  int vcpu_mmap_size_ = 0;
};

}  // namespace amalgam::vcpu

#endif  // AMALGAM_VCPU_KVM_H_
