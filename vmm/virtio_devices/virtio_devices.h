// VirtioDevices: the glue that puts amalgam's virtio devices into a KVM VM: parses the device
// flags, opens the backends, lays the virtio-mmio windows out in the 32-bit hole
// (kMmioBase + i * kMmioStride, GSIs from kGsis), produces the kernel command-line words
// (`virtio_mmio.device=512@0x...:N`, what Linux and the test guest parse) and the ACPI device
// list, and finally attaches each transport to the MMIO bus with an irqfd as its interrupt.
// Queue notifications arrive through KVM ioeventfds (one per queue, datamatch = queue index) and
// are processed, like frames arriving on a tap, on one device thread (RxPump).
//
// Use: Create (before the boot data is written: errors are user errors) -> KernelCmdline() /
// AcpiDevices() -> Attach (after the irqchip exists) -> run -> destroy before the Vm.
// Ownership: owns the transports, devices and irqfds; borrows memory, Vm and bus given to
// Attach, which must outlive it; the destructor takes the devices off the bus (stop the vCPUs
// first). Thread-safety: Create/Attach from one thread; the attached
// devices are thread-safe (one mutex per transport).
#ifndef AMALGAM_VMM_VIRTIO_DEVICES_VIRTIO_DEVICES_H_
#define AMALGAM_VMM_VIRTIO_DEVICES_VIRTIO_DEVICES_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "memory/guest_memory.h"
#include "vcpu/bus.h"
#include "vcpu/vm.h"
#include "virtio/mmio.h"
#include "vmm/acpi/tables.h"
#include "vmm/devices/byte_sink.h"
#include "vmm/virtio_devices/rx_pump.h"

namespace amalgam::vmm::virtio_devices {

inline constexpr uint64_t kMmioBase = 0xd0000000;
inline constexpr uint64_t kMmioStride = 0x1000;
// IOAPIC pins free on amalgam's board (0/2 PIT, 1 i8042, 4 COM1, 8 RTC, 12 mouse stay clear).
inline constexpr uint32_t kGsis[] = {5, 6, 7, 10, 11, 16, 17, 18, 19, 20, 21, 22, 23};

struct DiskSpec {
  std::string path;
  bool read_only = false;
  std::string id;  // name in Info and metrics; "" = "disk<N>" (N counts disks from 0)
};

// `--disk PATH[,ro]`. INVALID_ARGUMENT naming the flag for an empty path or unknown option.
absl::StatusOr<DiskSpec> ParseDiskFlag(absl::string_view value);

struct NetSpec {
  std::string tap;  // tap device name, opened (or created) in amalgam's network namespace
  std::array<uint8_t, 6> mac = {0x02, 0x41, 0x4d, 0x47, 0x00, 0x00};  // last byte: device index
  bool mac_given = false;
  std::string id;  // "" = "net<N>"
};

// `--net tap=NAME[,mac=aa:bb:cc:dd:ee:ff]`.
absl::StatusOr<NetSpec> ParseNetFlag(absl::string_view value);

struct VirtioOptions {
  std::vector<DiskSpec> disks;  // --disk, in order
  std::vector<NetSpec> nets;    // --net, in order
  bool rng = false;             // --rng
  bool console = false;         // --virtio-console
  // Queue notifications through KVM ioeventfds, handled on the device thread (no exit to
  // userspace on QueueNotify). false: handled on the vCPU thread inside the MMIO exit.
  bool ioeventfd = true;
  // Where virtio-console output goes: the serial port's sink, so both consoles land together.
  std::shared_ptr<devices::ByteSink> console_out;
  std::string rng_id = "rng0";
  std::string console_id = "console0";
};

struct AttachedDevice {
  std::string id;      // DiskSpec::id etc.
  std::string kind;    // "block", "net", "rng", "console"
  std::string detail;  // the backend: "/path/disk.img (read-only)", "tap tap0", "/dev/urandom"
  uint64_t base = 0;
  uint32_t gsi = 0;
  virtio::MmioTransport* transport = nullptr;  // owned by VirtioDevices
};

class VirtioDevices {
 public:
  // Opens every backend (disk files, /dev/urandom). Errors name the flag and the fix.
  static absl::StatusOr<std::unique_ptr<VirtioDevices>> Create(const VirtioOptions& options);
  ~VirtioDevices();
  VirtioDevices(const VirtioDevices&) = delete;
  VirtioDevices& operator=(const VirtioDevices&) = delete;

  // Words to append to the guest command line ("" when there are no devices).
  std::string KernelCmdline() const;
  // For vmm/acpi's DSDT (edge-triggered: irqfd pulses the line).
  std::vector<acpi::MmioDevice> AcpiDevices() const;
  // Creates the transports over `memory`, one irqfd per device on `vm`, and inserts them on
  // `mmio_bus`. Call once.
  absl::Status Attach(memory::GuestMemory* memory, vcpu::Vm* vm, vcpu::Bus* mmio_bus);

  const std::vector<AttachedDevice>& devices() const { return attached_; }

 private:
  struct Pending;
  class IrqfdLine;
  VirtioDevices() = default;

  std::vector<std::unique_ptr<virtio::VirtioDevice>> pending_;  // until Attach
  std::vector<std::string> kinds_;
  std::vector<std::string> ids_;      // per pending device
  std::vector<std::string> details_;  // per pending device
  std::vector<int> rx_fds_;  // per pending device: a backend fd to pump into queue 0, or -1
  bool use_ioeventfd_ = true;
  vcpu::Vm* vm_ = nullptr;
  std::vector<vcpu::Vm::IoeventfdSpec> ioeventfds_;  // registered; unregistered and closed last
  std::vector<std::unique_ptr<IrqfdLine>> irqs_;
  vcpu::Bus* bus_ = nullptr;  // set by Attach; devices are removed from it on destruction
  std::vector<std::shared_ptr<virtio::MmioTransport>> transports_;
  std::vector<AttachedDevice> attached_;
  std::unique_ptr<RxPump> pump_;  // destroyed first (declared last): it pokes the transports
};

}  // namespace amalgam::vmm::virtio_devices

#endif  // AMALGAM_VMM_VIRTIO_DEVICES_VIRTIO_DEVICES_H_
