#include "vmm/config/vm_config.h"

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "vmm/exit_outcome.h"

namespace amalgam::vmm::config {
namespace {

std::string HumanBytes(uint64_t bytes) {
  if (bytes % (1ull << 30) == 0) return absl::StrCat(bytes >> 30, "G");
  if (bytes % (1ull << 20) == 0) return absl::StrCat(bytes >> 20, "M");
  return absl::StrCat(bytes, " bytes");
}

}  // namespace

absl::StatusOr<uint64_t> ParseMemorySize(absl::string_view text) {
  const std::string original(text);
  auto bad = [&original](const char* why) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--memory %s: %s; use a size such as 256M or 1G (a bare number means MiB)", original, why));
  };
  std::string s = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  if (s.empty()) return bad("empty");
  size_t digits = 0;
  while (digits < s.size() && std::isdigit(static_cast<unsigned char>(s[digits]))) ++digits;
  if (digits == 0) return bad("not a number");
  uint64_t value = 0;
  if (!absl::SimpleAtoi(s.substr(0, digits), &value)) return bad("number too large");
  std::string suffix = s.substr(digits);
  if (suffix == "ib" || suffix == "b") return bad("missing unit before 'B'");
  if (suffix.size() >= 2 && suffix.substr(1) == "ib") suffix = suffix.substr(0, 1);
  if (suffix.size() == 2 && suffix[1] == 'b') suffix = suffix.substr(0, 1);
  int shift = 0;
  if (suffix.empty() || suffix == "m") {
    shift = 20;
  } else if (suffix == "k") {
    shift = 10;
  } else if (suffix == "g") {
    shift = 30;
  } else if (suffix == "t") {
    shift = 40;
  } else {
    return bad("unknown unit (K, M, G or T)");
  }
  if (value > (UINT64_MAX >> shift)) return bad("too large");
  return value << shift;
}

absl::StatusOr<VmConfig> ParseArgs(const std::vector<std::string>& args, bool* help) {
  *help = false;
  VmConfig config;
  if (const char* env = std::getenv(kKvmDeviceEnv); env != nullptr && *env != '\0') {
    config.kvm_device = env;
  }
  bool have_kernel = false;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    if (arg == "--help" || arg == "-h" || arg == "-help") {
      *help = true;
      return config;
    }
    if (arg.rfind("--", 0) != 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "unexpected argument '%s'; every option is a --flag (see amalgam --help)", arg));
    }
    std::string name = arg.substr(2);
    std::string value;
    bool have_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      have_value = true;
    }
    static const char* kKnown[] = {"kernel",
                                   "initrd",
                                   "cpu-template",
                                   "cmdline",
                                   "memory",
                                   "vcpus",
                                   "serial-out",
                                   "kvm-device",
                                   "disk",
                                   "net",
                                   "rng",
                                   "api-socket",
                                   "config",
                                   "virtio-console",
                                   "metrics-addr",
                                   "api-tcp",
                                   "api-tls-cert",
                                   "api-tls-key",
                                   "api-tls-client-ca"};
    bool known = false;
    for (const char* k : kKnown) known = known || name == k;
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrFormat("unknown flag --%s (see amalgam --help)", name));
    }
    if (name == "rng" || name == "virtio-console") {  // switches
      bool on = true;
      if (have_value && !absl::SimpleAtob(value, &on)) {
        return absl::InvalidArgumentError(
            absl::StrFormat("--%s=%s: expected true or false (or just --%s)", name, value, name));
      }
      (name == "rng" ? config.rng : config.virtio_console) = on;
      continue;
    }
    if (!have_value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrFormat("--%s needs a value", name));
      }
      value = args[++i];
    }
    if (name == "kernel") {
      config.kernel = value;
      have_kernel = true;
    } else if (name == "initrd") {
      if (value.empty()) return absl::InvalidArgumentError("--initrd needs a file path");
      config.initrd = value;
    } else if (name == "cpu-template") {
      if (value.empty()) {
        return absl::InvalidArgumentError("--cpu-template needs a name (e.g. baseline or host)");
      }
      config.cpu_template = value;
    } else if (name == "cmdline") {
      config.cmdline = value;
    } else if (name == "memory") {
      absl::StatusOr<uint64_t> bytes = ParseMemorySize(value);
      if (!bytes.ok()) return bytes.status();
      config.memory_bytes = *bytes;
    } else if (name == "vcpus") {
      int64_t n = 0;
      if (!absl::SimpleAtoi(value, &n) || n < 0 || n > INT32_MAX) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "--vcpus %s: not a vCPU count; use a whole number such as 1 or 2", value));
      }
      config.vcpus = static_cast<uint32_t>(n);
    } else if (name == "serial-out") {
      if (value.empty()) return absl::InvalidArgumentError("--serial-out needs a file path");
      config.serial_out = value;
    } else if (name == "kvm-device") {
      config.kvm_device = value;
    } else if (name == "disk") {
      config.disks.push_back(value);
    } else if (name == "net") {
      config.nets.push_back(value);
    } else if (name == "api-socket") {
      if (value.empty()) return absl::InvalidArgumentError("--api-socket needs a socket path");
      config.api_socket = value;
    } else if (name == "config") {
      if (value.empty()) return absl::InvalidArgumentError("--config needs a JSON file path");
      config.config_file = value;
    } else if (name == "metrics-addr") {
      config.metrics_address = value;
    } else if (name == "api-tcp") {
      config.api_tcp = value;
    } else if (name == "api-tls-cert") {
      config.tls_cert = value;
    } else if (name == "api-tls-key") {
      config.tls_key = value;
    } else if (name == "api-tls-client-ca") {
      config.tls_client_ca = value;
    }
  }
  if (config.api_mode()) {
    // The VM is described by --config or by the API's Create call, never by both.
    if (have_kernel || !config.initrd.empty() || !config.cmdline.empty() || !config.disks.empty() ||
        !config.nets.empty() || config.rng || config.virtio_console) {
      return absl::InvalidArgumentError(
          "with --api-socket the VM comes from --config FILE or the API's Create call; drop "
          "--kernel/--initrd/--cmdline and device flags, or drop --api-socket");
    }
    if (config.api_tcp.empty() &&
        !(config.tls_cert.empty() && config.tls_key.empty() && config.tls_client_ca.empty())) {
      return absl::InvalidArgumentError(
          "--api-tls-cert/--api-tls-key/--api-tls-client-ca need --api-tcp");
    }
    return config;
  }
  if (!config.config_file.empty() || !config.metrics_address.empty() || !config.tls_cert.empty() ||
      !config.tls_key.empty() || !config.tls_client_ca.empty()) {
    return absl::InvalidArgumentError(
        "--config, --metrics-addr and --api-tls-* belong to the control plane: add --api-socket "
        "PATH "
        "or --api-tcp HOST:PORT");
  }
  if (!have_kernel || config.kernel.empty()) {
    return absl::InvalidArgumentError(
        "--kernel is required: the path of a vmlinux (PVH ELF), a bzImage or the test guest");
  }
  return config;
}

absl::StatusOr<uint64_t> HostMemoryLimit(const std::string& meminfo_path) {
  std::ifstream in(meminfo_path);
  if (!in) return absl::UnavailableError(absl::StrCat("cannot read ", meminfo_path));
  uint64_t total = 0;
  bool have_total = false;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string key;
    uint64_t kib = 0;
    if (!(fields >> key >> kib)) continue;
    if (key == "MemTotal:") {
      total += kib << 10;
      have_total = true;
    } else if (key == "SwapTotal:") {
      total += kib << 10;
    }
  }
  if (!have_total) return absl::UnavailableError(absl::StrCat("no MemTotal in ", meminfo_path));
  return total;
}

absl::Status ValidateConfig(const VmConfig& config, const HostLimits& limits) {
  if (config.api_mode()) return absl::OkStatus();  // the control plane validates
  if (config.kernel.empty()) {
    return absl::InvalidArgumentError(
        "--kernel is required: the path of a vmlinux (PVH ELF), a bzImage or the test guest");
  }
  if (config.memory_bytes == 0) {
    return absl::InvalidArgumentError("--memory must be larger than 0 (e.g. 256M)");
  }
  if (config.memory_bytes % 4096 != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--memory %u bytes is not a multiple of 4 KiB; use K, M or G units", config.memory_bytes));
  }
  if (limits.max_memory_bytes != 0 && config.memory_bytes > limits.max_memory_bytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--memory %s is more than this host can back (RAM + swap = %s); use a smaller size",
        HumanBytes(config.memory_bytes),
        HumanBytes(limits.max_memory_bytes & ~((1ull << 20) - 1))));
  }
  if (config.vcpus == 0) {
    return absl::InvalidArgumentError("--vcpus must be at least 1");
  }
  if (limits.max_vcpus != 0 && config.vcpus > limits.max_vcpus) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--vcpus %u is more than KVM allows on this host (KVM_CAP_MAX_VCPUS = %u)",
                        config.vcpus, limits.max_vcpus));
  }
  return absl::OkStatus();
}

std::string UsageText() {
  return absl::StrFormat(
      R"(usage: amalgam --kernel PATH [--initrd PATH] [--cmdline STR] [--memory SIZE]
               [--vcpus N] [--cpu-template NAME] [--serial-out PATH]
               [--disk PATH[,ro]]... [--net tap=NAME[,mac=M]]... [--rng] [--virtio-console]
       amalgam --api-socket PATH [--config FILE] [--metrics-addr HOST:PORT]
       amalgam --api-tcp HOST:PORT --api-tls-cert PEM --api-tls-key PEM [--api-tls-client-ca PEM] ...

Boots a PVH ELF image (a vmlinux built with CONFIG_PVH=y, or //guest:test_guest) or a bzImage
(64-bit boot protocol) in a KVM microVM with ACPI tables (one CPU per vCPU, IOAPIC, COM1,
power-off through the FADT's sleep control port 0x600), a 16550 serial console (COM1, 0x3F8,
IRQ 4; stdin feeds its receiver), an i8042 reset line (0x64) and an isa-debug-exit port (0xF4).

flags:
  --kernel PATH       the kernel to boot (required): a vmlinux/PVH ELF or a bzImage, told
                      apart by content
  --initrd PATH       an initramfs for the kernel (PVH: a start_info module; bzImage:
                      boot_params ramdisk), placed as high in RAM as allowed
  --cpu-template NAME a named CPU template (CPUID/MSR mask): baseline (x86-64-v2 level, the
                      same on every node) or host (unchanged); default: none (= host)
  --cmdline STR       the guest kernel command line (default: empty; at most 4095 bytes)
  --memory SIZE       guest RAM, e.g. 256M, 1G, 512K (bare number = MiB; default 256M);
                      RAM above 3 GiB is mapped from 4 GiB up
  --vcpus N           number of vCPUs (default 1; at most KVM_CAP_MAX_VCPUS)
  --serial-out PATH   write the guest's serial output to PATH instead of stdout
  --disk PATH[,ro]    a virtio-blk disk backed by a host file (repeatable; ro = read-only)
  --net tap=NAME[,mac=aa:bb:cc:dd:ee:ff]
                      a virtio-net device on a tap interface (repeatable)
  --rng               a virtio-rng device fed from /dev/urandom
  --virtio-console    a virtio console whose output joins the serial output
                      (virtio devices appear on the command line as virtio_mmio.device=... and
                      in the ACPI DSDT)
  --api-socket PATH   serve the gRPC control API (vmm/api/amalgam.proto) on a Unix socket
                      (0600); the VM is then created by --config or by the API (amalgamctl)
  --config FILE       with --api-socket: create and start the VM from this JSON VmConfig
  --metrics-addr H:P  with --api-socket: Prometheus text metrics at http://H:P/metrics
  --api-tcp H:P       serve the API over TCP as well/instead; TCP is refused without TLS:
  --api-tls-cert PEM  the server certificate chain and
  --api-tls-key PEM   its private key;
  --api-tls-client-ca PEM
                      optional: require client certificates signed by this CA
  --help              print this text and exit

environment:
  %s   the KVM device to open (default %s)

exit status:
  (v << 1) | 1   the guest wrote v to the debug-exit port 0xF4 (low 8 bits; always odd)
  0              the guest powered off or requested a reset (reason printed on stderr),
                 or the VM was stopped by a signal (SIGINT/SIGTERM)
  %d              usage or configuration error (bad flag, kernel, memory, vCPUs, no KVM)
  %d              guest triple fault (KVM_EXIT_SHUTDOWN)
  %d              KVM internal error (e.g. an instruction KVM cannot emulate)
  %d              the VMM itself failed while running the guest
)",
      kKvmDeviceEnv, kDefaultKvmDevice, kExitUsage, kExitTripleFault, kExitInternalError,
      kExitVmmError);
}

}  // namespace amalgam::vmm::config
