#include "vmm/devices/power_off.h"

#include <cstring>
#include <utility>

namespace amalgam::vmm::devices {

PowerOff::PowerOff(std::shared_ptr<StopRequester> stop) : stop_(std::move(stop)) {}

void PowerOff::Read(uint64_t offset, absl::Span<uint8_t> data) {
  std::memset(data.data(), 0, data.size());
}

void PowerOff::Write(uint64_t offset, absl::Span<const uint8_t> data) {
  // Only the control register (offset 0) acts; the status register's write-1-to-clear bits
  // have nothing to clear here.
  if (offset != 0 || data.empty()) return;
  const uint8_t value = data[0];
  const uint8_t sleep_type = (value >> 2) & 0x7;  // SLP_TYPx, bits 2-4
  if ((value & kSleepEnable) == 0 || sleep_type != kSleepTypeS5) return;
  if (stop_ != nullptr) stop_->RequestStop(ExitOutcome::Of(ExitKind::kPowerOff, "power-off"));
}

}  // namespace amalgam::vmm::devices
