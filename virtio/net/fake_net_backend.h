// FakeNetBackend: an in-memory NetBackend for device logic tests and the fuzzer: frames sent
// are recorded, frames to receive are queued by the test. Thread-safety: not thread-safe.
#ifndef AMALGAM_VIRTIO_NET_FAKE_NET_BACKEND_H_
#define AMALGAM_VIRTIO_NET_FAKE_NET_BACKEND_H_

#include <cstring>
#include <deque>
#include <vector>

#include "virtio/net/net_backend.h"

namespace amalgam::virtio::net {

class FakeNetBackend : public NetBackend {
 public:
  Offloads supported_offloads() const override { return supported; }
  absl::Status SetOffloads(const Offloads& o) override {
    enabled = o;
    return absl::OkStatus();
  }
  absl::Status Send(absl::Span<const iovec> iov) override {
    std::vector<uint8_t> f;
    for (const iovec& v : iov) {
      const uint8_t* p = static_cast<const uint8_t*>(v.iov_base);
      f.insert(f.end(), p, p + v.iov_len);
    }
    sent.push_back(std::move(f));
    return absl::OkStatus();
  }
  absl::StatusOr<size_t> Receive(absl::Span<uint8_t> buf) override {
    if (incoming.empty()) return 0;
    std::vector<uint8_t> f = std::move(incoming.front());
    incoming.pop_front();
    const size_t n = f.size() < buf.size() ? f.size() : buf.size();
    if (n > 0) memcpy(buf.data(), f.data(), n);
    return n;
  }
  int pollable_fd() const override { return -1; }

  Offloads supported;
  Offloads enabled;
  std::vector<std::vector<uint8_t>> sent;
  std::deque<std::vector<uint8_t>> incoming;
};

}  // namespace amalgam::virtio::net

#endif  // AMALGAM_VIRTIO_NET_FAKE_NET_BACKEND_H_
