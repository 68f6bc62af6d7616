// I8042: the minimum of a PC keyboard controller that a guest kernel needs: its status and
// command ports, a few probe commands, and the CPU reset line (command 0xFE), which asks the
// VM to stop with reason "reset". No keyboard or mouse is attached.
// Insert it at port 0x60 with length 5 (0x60 data, 0x64 status/command; 0x61 is the in-kernel
// PIT's speaker port and never reaches userspace). Ownership: shares the stop requester.
// Thread-safety: an internal mutex.
#ifndef AMALGAM_VMM_DEVICES_I8042_H_
#define AMALGAM_VMM_DEVICES_I8042_H_

#include <cstdint>
#include <deque>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "vcpu/bus.h"
#include "vmm/exit_outcome.h"

namespace amalgam::vmm::devices {

class I8042 : public vcpu::BusDevice {
 public:
  static constexpr uint16_t kBasePort = 0x60;
  static constexpr uint64_t kPortSpan = 5;
  static constexpr uint64_t kDataOffset = 0;
  static constexpr uint64_t kCommandOffset = 4;
  static constexpr uint8_t kCmdResetCpu = 0xfe;

  explicit I8042(std::shared_ptr<StopRequester> stop);

  void Read(uint64_t offset, absl::Span<uint8_t> data) override;
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override;

 private:
  void Command(uint8_t cmd) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Data(uint8_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::shared_ptr<StopRequester> stop_;
  absl::Mutex mu_;
  std::deque<uint8_t> output_ ABSL_GUARDED_BY(mu_);   // bytes for the guest to read at 0x60
  uint8_t command_byte_ ABSL_GUARDED_BY(mu_) = 0x45;  // kbd irq on, system flag, translate
  uint8_t pending_write_ ABSL_GUARDED_BY(mu_) = 0;    // command waiting for a data byte
  bool reset_requested_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace amalgam::vmm::devices

#endif  // AMALGAM_VMM_DEVICES_I8042_H_
