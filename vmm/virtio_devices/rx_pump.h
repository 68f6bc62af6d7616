// RxPump: one thread that waits (epoll, edge-triggered) until any backend fd is readable and
// then pokes the owning transport's receive queue, so host->guest traffic needs no vCPU exit.
// Ownership: borrows the transports, which must outlive it; the destructor stops and joins.
// Thread-safety: Add before Start; the thread only calls MmioTransport::Poke (thread-safe).
#ifndef AMALGAM_VMM_VIRTIO_DEVICES_RX_PUMP_H_
#define AMALGAM_VMM_VIRTIO_DEVICES_RX_PUMP_H_

#include <cstdint>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "virtio/mmio.h"

namespace amalgam::vmm::virtio_devices {

class RxPump {
 public:
  RxPump() = default;
  ~RxPump();
  RxPump(const RxPump&) = delete;
  RxPump& operator=(const RxPump&) = delete;

  // When `fd` becomes readable, `transport->Poke(queue)`.
  void Add(int fd, virtio::MmioTransport* transport, uint32_t queue);
  absl::Status Start();

 private:
  struct Source {
    int fd;
    virtio::MmioTransport* transport;
    uint32_t queue;
  };
  void Loop();

  std::vector<Source> sources_;
  int epoll_fd_ = -1;
  int stop_fd_ = -1;
  std::thread thread_;
};

}  // namespace amalgam::vmm::virtio_devices

#endif  // AMALGAM_VMM_VIRTIO_DEVICES_RX_PUMP_H_
