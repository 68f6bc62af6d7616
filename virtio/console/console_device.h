// ConsoleDevice: virtio-console (device ID 3), one port, no multiport: receiveq0 (queue 0,
// host -> guest) and transmitq0 (queue 1, guest -> host). Transmitted bytes go to a
// ConsoleSink (amalgam points it at the serial port's sink, so both consoles land in one
// place). Input is optional: QueueInput buffers host bytes, then the owner pokes queue 0.
// Ownership: the device owns nothing but a shared sink. Thread-safety: ProcessQueue is called
// by the transport (serialized); QueueInput may be called from any thread.
#ifndef AMALGAM_VIRTIO_CONSOLE_CONSOLE_DEVICE_H_
#define AMALGAM_VIRTIO_CONSOLE_CONSOLE_DEVICE_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "virtio/device.h"

namespace amalgam::virtio::console {

class ConsoleSink {
 public:
  virtual ~ConsoleSink() = default;
  // Best effort, must not block for long; the guest never waits on a slow console.
  virtual void Write(absl::Span<const uint8_t> bytes) = 0;
};

// Bytes the device keeps for a guest that does not read its input; more are dropped.
inline constexpr size_t kMaxPendingInput = 64 * 1024;

class ConsoleDevice : public VirtioDevice {
 public:
  explicit ConsoleDevice(std::shared_ptr<ConsoleSink> sink) : sink_(std::move(sink)) {}
  uint32_t device_id() const override;
  uint64_t device_features() const override { return 0; }
  std::vector<uint16_t> queue_max_sizes() const override { return {64, 64}; }
  void ReadConfig(uint64_t, absl::Span<uint8_t> data) const override {
    std::fill(data.begin(), data.end(), 0);
  }
  absl::Status ProcessQueue(size_t index, memory::GuestMemory& mem, Queue& queue) override;

  // Host input for the guest; returns how many bytes were accepted (the rest is dropped).
  size_t QueueInput(absl::Span<const uint8_t> bytes);
  uint64_t bytes_out() const { return bytes_out_.load(); }
  std::vector<DeviceCounter> Counters() const override;

 private:
  std::shared_ptr<ConsoleSink> sink_;
  // Atomics: metrics threads read them while the transport runs the device.
  std::atomic<uint64_t> bytes_out_{0};
  std::atomic<uint64_t> bytes_in_{0};
  std::atomic<uint64_t> input_dropped_{0};
  absl::Mutex mu_;
  std::deque<uint8_t> input_ ABSL_GUARDED_BY(mu_);
};

}  // namespace amalgam::virtio::console

#endif  // AMALGAM_VIRTIO_CONSOLE_CONSOLE_DEVICE_H_
