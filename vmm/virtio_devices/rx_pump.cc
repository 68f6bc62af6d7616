#include "vmm/virtio_devices/rx_pump.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace amalgam::vmm::virtio_devices {

RxPump::~RxPump() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof(one));
    thread_.join();
  }
  if (epoll_fd_ >= 0) close(epoll_fd_);
  if (stop_fd_ >= 0) close(stop_fd_);
}

void RxPump::Add(int fd, virtio::MmioTransport* transport, uint32_t queue, bool drain) {
  sources_.push_back({fd, transport, queue, drain});
}

absl::Status RxPump::Start() {
  if (sources_.empty()) return absl::OkStatus();
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (epoll_fd_ < 0 || stop_fd_ < 0) {
    return absl::InternalError(absl::StrCat("rx pump: epoll/eventfd: ", strerror(errno)));
  }
  epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u64 = UINT64_MAX;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, stop_fd_, &ev) != 0) {
    return absl::InternalError(absl::StrCat("rx pump: epoll_ctl: ", strerror(errno)));
  }
  for (size_t i = 0; i < sources_.size(); ++i) {
    // Edge-triggered: a frame left in the backend because the guest had no buffer is picked
    // up when the guest posts one (its notification), not by spinning here.
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u64 = i;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, sources_[i].fd, &ev) != 0) {
      return absl::InternalError(absl::StrCat("rx pump: epoll_ctl: ", strerror(errno)));
    }
  }
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void RxPump::Loop() {
  epoll_event events[16];
  while (true) {
    const int n = epoll_wait(epoll_fd_, events, 16, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == UINT64_MAX) return;
      const Source& s = sources_[events[i].data.u64];
      if (s.drain) {
        uint64_t count;
        (void)!read(s.fd, &count, sizeof(count));
      }
      s.transport->Poke(s.queue);
    }
  }
}

}  // namespace amalgam::vmm::virtio_devices
