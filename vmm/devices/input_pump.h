// InputPump: copies host input (stdin, a pipe) into a UART's receive queue on its own thread,
// waiting instead of overrunning while the guest has not drained the queue. Ends at EOF, on a
// read error, or when destroyed.
// Ownership: borrows the fd (not closed) and the UART (must outlive the pump). Thread-safety:
// construct and destroy on one thread; finished() from any thread.
#ifndef AMALGAM_VMM_DEVICES_INPUT_PUMP_H_
#define AMALGAM_VMM_DEVICES_INPUT_PUMP_H_

#include <atomic>
#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "vmm/devices/serial.h"

namespace amalgam::vmm::devices {

class InputPump {
 public:
  static absl::StatusOr<std::unique_ptr<InputPump>> Start(int fd, Serial16550* uart);
  ~InputPump();
  InputPump(const InputPump&) = delete;
  InputPump& operator=(const InputPump&) = delete;

  // True once the input ended (EOF or error) or the pump was told to stop.
  bool finished() const { return finished_.load(); }

 private:
  InputPump(int fd, Serial16550* uart, int wake_read, int wake_write)
      : fd_(fd), uart_(uart), wake_read_(wake_read), wake_write_(wake_write) {}
  void Loop();

  const int fd_;
  Serial16550* const uart_;
  const int wake_read_;  // a pipe: writing it tells the thread to stop
  const int wake_write_;
  std::atomic<bool> finished_{false};
  std::thread thread_;
};

}  // namespace amalgam::vmm::devices

#endif  // AMALGAM_VMM_DEVICES_INPUT_PUMP_H_
