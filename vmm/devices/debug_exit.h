// DebugExit: QEMU's isa-debug-exit semantics at port 0xF4 (size 4): a guest write of v asks the
// VM to stop with exit status (v << 1) | 1. Tests and benchmark guests end through it.
// Ownership: shares the stop requester. Thread-safety: stateless.
#ifndef AMALGAM_VMM_DEVICES_DEBUG_EXIT_H_
#define AMALGAM_VMM_DEVICES_DEBUG_EXIT_H_

#include <cstdint>
#include <memory>

#include "vcpu/bus.h"
#include "vmm/exit_outcome.h"

namespace amalgam::vmm::devices {

class DebugExit : public vcpu::BusDevice {
 public:
  static constexpr uint16_t kPort = 0xf4;
  static constexpr uint64_t kSize = 4;

  explicit DebugExit(std::shared_ptr<StopRequester> stop);

  void Read(uint64_t offset, absl::Span<uint8_t> data) override;
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override;

 private:
  const std::shared_ptr<StopRequester> stop_;
};

}  // namespace amalgam::vmm::devices

#endif  // AMALGAM_VMM_DEVICES_DEBUG_EXIT_H_
