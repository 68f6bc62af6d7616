// VmConfig: what the `amalgam` command line (and later the control plane) asks for, its parsing
// from argv, and validation against the host's limits. Errors are one line naming the flag and
// the fix. Thread-safety: pure functions over value types.
#ifndef AMALGAM_VMM_CONFIG_VM_CONFIG_H_
#define AMALGAM_VMM_CONFIG_VM_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace amalgam::vmm::config {

inline constexpr uint64_t kDefaultMemoryBytes = 256ull << 20;
inline constexpr const char* kDefaultKvmDevice = "/dev/kvm";
// The environment variable that overrides the KVM device (tests point it at a missing path).
inline constexpr const char* kKvmDeviceEnv = "AMALGAM_KVM_DEVICE";

struct VmConfig {
  std::string kernel;        // required: a PVH ELF image or a bzImage
  std::string initrd;        // empty: none
  std::string cpu_template;  // empty: none (the CPUID KVM supports); else a vcpu/cpu_template name
  std::string cmdline;       // the guest kernel command line
  uint64_t memory_bytes = kDefaultMemoryBytes;
  uint32_t vcpus = 1;
  std::string serial_out;  // empty: stdout
  std::string kvm_device = kDefaultKvmDevice;
  // virtio devices, as given on the command line (parsed by vmm/virtio_devices).
  std::vector<std::string> disks;  // --disk PATH[,ro], in order
  std::vector<std::string> nets;   // --net tap=NAME[,mac=..], in order
  bool rng = false;                // --rng
  bool virtio_console = false;     // --virtio-console
  // Control plane: with --api-socket the VM comes from --config FILE or the API's Create call,
  // so the VM flags above (kernel, memory, ...) must not be given.
  std::string api_socket;       // --api-socket PATH (a Unix socket, created 0600)
  std::string config_file;      // --config FILE (VmConfig in protobuf JSON)
  std::string metrics_address;  // --metrics-addr HOST:PORT (Prometheus text, GET /metrics)
  // The API over TCP, only with TLS: --api-tcp HOST:PORT --api-tls-cert F --api-tls-key F
  // [--api-tls-client-ca F] (the control plane checks the files and refuses TCP without TLS).
  std::string api_tcp;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;

  bool api_mode() const { return !api_socket.empty() || !api_tcp.empty(); }
};

// "256M", "1G", "512k", "2GiB", "4096K", "1T"; a bare number means MiB (as QEMU's -m). Result is
// in bytes. INVALID_ARGUMENT for garbage, overflow or a negative value.
absl::StatusOr<uint64_t> ParseMemorySize(absl::string_view text);

// Parses the flags UsageText() lists (plus the hidden --kvm-device PATH); both `--flag value` and
// `--flag=value` work, the switches --rng and --virtio-console take no value. The kvm device
// defaults to $AMALGAM_KVM_DEVICE when set. Sets *help and returns early on --help.
absl::StatusOr<VmConfig> ParseArgs(const std::vector<std::string>& args, bool* help);

// The usage text printed by --help (flags, defaults, exit codes).
std::string UsageText();

struct HostLimits {
  uint64_t max_memory_bytes = 0;  // 0: unknown, no check
  uint32_t max_vcpus = 0;         // 0: unknown, no check
};

// MemTotal + SwapTotal from a meminfo file: the most guest RAM that could ever be backed.
absl::StatusOr<uint64_t> HostMemoryLimit(const std::string& meminfo_path = "/proc/meminfo");

// Checks the fields that do not need KVM or the kernel file: memory > 0, page multiple, within
// the host limit; vCPUs in [1, max]; kernel given (or, with --api-socket, no VM flags at all).
absl::Status ValidateConfig(const VmConfig& config, const HostLimits& limits);

}  // namespace amalgam::vmm::config

#endif  // AMALGAM_VMM_CONFIG_VM_CONFIG_H_
