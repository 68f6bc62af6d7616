// RngDevice: virtio-rng (device ID 4), one request queue whose writable buffers are filled from
// an EntropySource. UrandomSource reads /dev/urandom (opened once).
// Ownership: the device owns its source. Thread-safety: called only by its transport.
#ifndef AMALGAM_VIRTIO_RNG_RNG_DEVICE_H_
#define AMALGAM_VIRTIO_RNG_RNG_DEVICE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "virtio/device.h"

namespace amalgam::virtio::rng {

class EntropySource {
 public:
  virtual ~EntropySource() = default;
  // Fills `out` completely or fails.
  virtual absl::Status Fill(absl::Span<uint8_t> out) = 0;
};

class UrandomSource : public EntropySource {
 public:
  // Errors name the path and errno.
  static absl::StatusOr<std::unique_ptr<UrandomSource>> Open(
      const std::string& path = "/dev/urandom");
  ~UrandomSource() override;
  absl::Status Fill(absl::Span<uint8_t> out) override;

 private:
  explicit UrandomSource(int fd) : fd_(fd) {}
  const int fd_;
};

// Bytes handed out per request at most, so one huge guest buffer cannot stall the VMM.
inline constexpr uint32_t kMaxBytesPerRequest = 64 * 1024;

class RngDevice : public VirtioDevice {
 public:
  explicit RngDevice(std::unique_ptr<EntropySource> source) : source_(std::move(source)) {}
  uint32_t device_id() const override;
  uint64_t device_features() const override { return 0; }
  std::vector<uint16_t> queue_max_sizes() const override { return {64}; }
  void ReadConfig(uint64_t, absl::Span<uint8_t> data) const override {
    std::fill(data.begin(), data.end(), 0);
  }
  absl::Status ProcessQueue(size_t index, memory::GuestMemory& mem, Queue& queue) override;
  uint64_t bytes_served() const { return bytes_served_.load(); }
  std::vector<DeviceCounter> Counters() const override;

 private:
  std::unique_ptr<EntropySource> source_;
  // Atomics: written under the transport's serialization, read by metrics threads.
  std::atomic<uint64_t> bytes_served_{0};
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> source_errors_{0};
};

}  // namespace amalgam::virtio::rng

#endif  // AMALGAM_VIRTIO_RNG_RNG_DEVICE_H_
