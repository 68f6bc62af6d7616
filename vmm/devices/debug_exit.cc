#include "vmm/devices/debug_exit.h"

#include <cstring>
#include <utility>

namespace amalgam::vmm::devices {

DebugExit::DebugExit(std::shared_ptr<StopRequester> stop) : stop_(std::move(stop)) {}

void DebugExit::Read(uint64_t offset, absl::Span<uint8_t> data) {
  std::memset(data.data(), 0xff, data.size());
}

void DebugExit::Write(uint64_t offset, absl::Span<const uint8_t> data) {
  // The value is the little-endian access as written (outb/outw/outl); a write at an offset
  // inside the port still ends the VM, with the bytes placed where the guest put them.
  uint32_t value = 0;
  for (size_t i = 0; i < data.size() && offset + i < kSize; ++i) {
    value |= static_cast<uint32_t>(data[i]) << (8 * (offset + i));
  }
  if (stop_ != nullptr) stop_->RequestStop(ExitOutcome::DebugExit(value));
}

}  // namespace amalgam::vmm::devices
