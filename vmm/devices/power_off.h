// PowerOff: the ACPI sleep control/status register pair that the FADT points at (vmm/acpi
// `sleep_control_port`). A guest that writes SLP_EN with sleep type 5 (the DSDT's \_S5, i.e.
// the byte 0x34) asks the VM to stop with reason "power-off" (exit status 0). Other sleep types
// are ignored (a microVM has no suspend); the status register reads as 0.
// Insert it at the sleep control port with length 2. Ownership: shares the stop requester.
// Thread-safety: stateless.
#ifndef AMALGAM_VMM_DEVICES_POWER_OFF_H_
#define AMALGAM_VMM_DEVICES_POWER_OFF_H_

#include <cstdint>
#include <memory>

#include "vcpu/bus.h"
#include "vmm/exit_outcome.h"

namespace amalgam::vmm::devices {

class PowerOff : public vcpu::BusDevice {
 public:
  // Clear of the legacy PC ports the other devices use (0x60-0x64, 0xF4, 0x3F8).
  static constexpr uint16_t kPort = 0x600;
  static constexpr uint64_t kSize = 2;  // control at +0, status at +1
  static constexpr uint8_t kSleepTypeS5 = 5;
  static constexpr uint8_t kSleepEnable = 0x20;

  explicit PowerOff(std::shared_ptr<StopRequester> stop);

  void Read(uint64_t offset, absl::Span<uint8_t> data) override;
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override;

 private:
  const std::shared_ptr<StopRequester> stop_;
};

}  // namespace amalgam::vmm::devices

#endif  // AMALGAM_VMM_DEVICES_POWER_OFF_H_
