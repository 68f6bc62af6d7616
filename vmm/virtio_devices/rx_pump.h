// RxPump: the device event loop: one thread that waits (epoll, edge-triggered) until a backend
// fd is readable (a tap: poke the receive queue) or a queue's ioeventfd fired (the guest wrote
// QueueNotify: process that queue), so neither needs a vCPU exit to userspace.
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

  // When `fd` becomes readable, `transport->Poke(queue)`; `drain`: read the eventfd counter
  // first (ioeventfds), otherwise the device reads the fd itself (taps).
  void Add(int fd, virtio::MmioTransport* transport, uint32_t queue, bool drain = false);
  absl::Status Start();

 private:
  struct Source {
    int fd;
    virtio::MmioTransport* transport;
    uint32_t queue;
    bool drain;
  };
  void Loop();

  std::vector<Source> sources_;
  int epoll_fd_ = -1;
  int stop_fd_ = -1;
  std::thread thread_;
};

}  // namespace amalgam::vmm::virtio_devices

#endif  // AMALGAM_VMM_VIRTIO_DEVICES_RX_PUMP_H_
