// BootTestGuest: a minimal single-vCPU KVM VM for tests of the virtio glue: guest RAM, in-kernel
// irqchip + PIT, COM1 and debug-exit on port I/O, the VirtioDevices on the MMIO bus, the test
// guest loaded through PVH with `workload` plus the devices' command-line words. Runs until the
// guest writes the debug-exit port (or a watchdog stops it). vmm/machine will host the same
// devices once it is wired; this keeps the virtio tests independent of that work.
// Thread-safety: call from one thread.
#ifndef AMALGAM_VMM_VIRTIO_DEVICES_TEST_VMM_H_
#define AMALGAM_VMM_VIRTIO_DEVICES_TEST_VMM_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "vmm/virtio_devices/virtio_devices.h"

namespace amalgam::vmm::virtio_devices {

struct BootResult {
  std::string serial;          // everything on COM1 and virtio-console
  bool debug_exit = false;     // the guest wrote port 0xF4
  uint32_t exit_value = 0;     // what it wrote (0 = workload passed)
  std::string stop_reason;     // otherwise: why the run ended
  uint64_t device_errors = 0;  // summed over all transports
};

// A guest still running after `watchdog_seconds` is stopped (stop_reason says so), so a wedged
// guest fails a test with a message instead of hitting the test timeout.
absl::StatusOr<BootResult> BootTestGuest(const std::string& guest_elf, const std::string& workload,
                                         VirtioOptions options, uint64_t memory_bytes = 256 << 20,
                                         int watchdog_seconds = 45);

}  // namespace amalgam::vmm::virtio_devices

#endif  // AMALGAM_VMM_VIRTIO_DEVICES_TEST_VMM_H_
