// NetDevice: virtio-net (device ID 1), one queue pair (receiveq 0, transmitq 1), a MAC in config
// space. Offloads are offered only when the backend has them (NetBackend::supported_offloads)
// and enabled on it only for what the driver accepted (Activate). Frames keep the 12-byte
// virtio_net_hdr end to end. Receive: the owner calls MmioTransport::Poke(0) when the backend
// fd becomes readable; frames wait (one at a time) until the guest posts a receive buffer.
// Frames that do not fit a guest buffer, or that the backend refuses, are dropped and counted:
// traffic problems never become device errors.
// Ownership: owns the backend. Thread-safety: called only by its transport (serialized).
#ifndef AMALGAM_VIRTIO_NET_NET_DEVICE_H_
#define AMALGAM_VIRTIO_NET_NET_DEVICE_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "virtio/device.h"
#include "virtio/net/net_backend.h"

namespace amalgam::virtio::net {

// Feature bits (virtio 1.x section 5.1.3).
inline constexpr int kFeatureCsum = 0;
inline constexpr int kFeatureGuestCsum = 1;
inline constexpr int kFeatureMac = 5;
inline constexpr int kFeatureGuestTso4 = 7;
inline constexpr int kFeatureGuestTso6 = 8;
inline constexpr int kFeatureHostTso4 = 11;
inline constexpr int kFeatureHostTso6 = 12;

inline constexpr size_t kMaxFrame = 65562;  // 64 KiB TSO frame + Ethernet header + vnet header
inline constexpr uint16_t kNetQueueSize = 256;

// Atomics: the transport serializes the writers, metrics threads read them concurrently.
struct NetStats {
  std::atomic<uint64_t> rx_frames{0}, tx_frames{0}, rx_dropped{0}, tx_dropped{0};
  std::atomic<uint64_t> rx_bytes{0}, tx_bytes{0};  // frames as the guest sees them (vnet hdr incl.)
};

class NetDevice : public VirtioDevice {
 public:
  NetDevice(std::unique_ptr<NetBackend> backend, std::array<uint8_t, 6> mac);

  uint32_t device_id() const override;
  uint64_t device_features() const override;
  std::vector<uint16_t> queue_max_sizes() const override { return {kNetQueueSize, kNetQueueSize}; }
  void ReadConfig(uint64_t offset, absl::Span<uint8_t> data) const override;
  absl::Status Activate(uint64_t features) override;
  absl::Status ProcessQueue(size_t index, memory::GuestMemory& mem, Queue& queue) override;
  void Reset() override;

  const NetStats& stats() const { return stats_; }
  std::vector<DeviceCounter> Counters() const override;
  NetBackend& backend() { return *backend_; }

 private:
  absl::Status Receive(memory::GuestMemory& mem, Queue& queue);
  absl::Status Transmit(memory::GuestMemory& mem, Queue& queue);

  std::unique_ptr<NetBackend> backend_;
  std::array<uint8_t, 6> mac_;
  std::vector<uint8_t> rx_frame_;  // a frame read from the backend, waiting for a buffer
  size_t rx_len_ = 0;              // 0: none waiting
  NetStats stats_;
};

}  // namespace amalgam::virtio::net

#endif  // AMALGAM_VIRTIO_NET_NET_DEVICE_H_
