// NetBackend: where a virtio-net device's frames go (a tap device today). Frames cross this
// interface with the 12-byte virtio_net_hdr (v1) in front, exactly as the guest and a tap with
// IFF_VNET_HDR both lay them out, so no header is rewritten on the data path.
// TapBackend: a tap device (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, non-blocking), vnet header size
// 12, offloads probed at open and enabled only for what the driver negotiated.
// Ownership: TapBackend owns its fd. Thread-safety: Send/Receive may run on different threads
// (tap reads and writes are independent); SetOffloads only before traffic.
#ifndef AMALGAM_VIRTIO_NET_NET_BACKEND_H_
#define AMALGAM_VIRTIO_NET_NET_BACKEND_H_

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace amalgam::virtio::net {

inline constexpr size_t kVnetHdrSize = 12;

// Host offloads a backend can take (TUN_F_* meaning): checksum left to the host, TSO4/6 frames.
struct Offloads {
  bool csum = false;
  bool tso4 = false;
  bool tso6 = false;
};

class NetBackend {
 public:
  virtual ~NetBackend() = default;
  // What the backend can do: device features are offered from this, never more.
  virtual Offloads supported_offloads() const = 0;
  // Enables what the guest accepts to receive (GUEST_CSUM / GUEST_TSO4 / GUEST_TSO6).
  virtual absl::Status SetOffloads(const Offloads& guest_accepts) = 0;
  // One frame (vnet header + Ethernet frame) gathered from `iov`. UNAVAILABLE when the host
  // queue is full (the frame is dropped), other codes for real failures.
  virtual absl::Status Send(absl::Span<const iovec> iov) = 0;
  // One frame into `buf`; returns its length, or 0 when nothing is waiting.
  virtual absl::StatusOr<size_t> Receive(absl::Span<uint8_t> buf) = 0;
  // Becomes readable when a frame waits (for the VMM's event loop); -1 if none.
  virtual int pollable_fd() const = 0;
};

class TapBackend : public NetBackend {
 public:
  // Opens (and creates, with CAP_NET_ADMIN) tap `name` in the caller's network namespace.
  // Errors name the tap and the fix (permissions, missing /dev/net/tun).
  static absl::StatusOr<std::unique_ptr<TapBackend>> Open(const std::string& name);
  ~TapBackend() override;
  TapBackend(const TapBackend&) = delete;
  TapBackend& operator=(const TapBackend&) = delete;

  Offloads supported_offloads() const override { return supported_; }
  absl::Status SetOffloads(const Offloads& guest_accepts) override;
  absl::Status Send(absl::Span<const iovec> iov) override;
  absl::StatusOr<size_t> Receive(absl::Span<uint8_t> buf) override;
  int pollable_fd() const override { return fd_; }
  const std::string& name() const { return name_; }

 private:
  TapBackend(int fd, std::string name, Offloads supported)
      : fd_(fd), name_(std::move(name)), supported_(supported) {}
  const int fd_;
  const std::string name_;
  const Offloads supported_;
};

}  // namespace amalgam::virtio::net

#endif  // AMALGAM_VIRTIO_NET_NET_BACKEND_H_
