#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "virtio/net/net_backend.h"

namespace amalgam::virtio::net {
namespace {

unsigned TunFlags(const Offloads& o) {
  return (o.csum ? TUN_F_CSUM : 0) | (o.tso4 ? TUN_F_TSO4 : 0) | (o.tso6 ? TUN_F_TSO6 : 0);
}

}  // namespace

absl::StatusOr<std::unique_ptr<TapBackend>> TapBackend::Open(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ) {
    return absl::InvalidArgumentError(
        absl::StrCat("--net tap=", name, ": a tap name has 1 to ", IFNAMSIZ - 1, " characters"));
  }
  const int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("--net tap=", name, ": /dev/net/tun: ", strerror(errno), " (modprobe tun?)"));
  }
  struct ifreq ifr = {};
  strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
    const int err = errno;
    close(fd);
    return absl::PermissionDeniedError(
        absl::StrCat("--net tap=", name, ": TUNSETIFF: ", strerror(err),
                     " (needs CAP_NET_ADMIN, or a tap created for this user with `ip tuntap`)"));
  }
  int hdr = kVnetHdrSize;
  if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) != 0) {
    const int err = errno;
    close(fd);
    return absl::InternalError(
        absl::StrCat("--net tap=", name, ": TUNSETVNETHDRSZ: ", strerror(err)));
  }
  // Probe each offload the kernel accepts, then start with none: the guest has not agreed yet.
  Offloads supported;
  supported.csum = ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM) == 0;
  supported.tso4 = supported.csum && ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4) == 0;
  supported.tso6 = supported.csum && ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO6) == 0;
  if (ioctl(fd, TUNSETOFFLOAD, 0) != 0) {
    const int err = errno;
    close(fd);
    return absl::InternalError(
        absl::StrCat("--net tap=", name, ": TUNSETOFFLOAD: ", strerror(err)));
  }
  return std::unique_ptr<TapBackend>(new TapBackend(fd, ifr.ifr_name, supported));
}

TapBackend::~TapBackend() { close(fd_); }

absl::Status TapBackend::SetOffloads(const Offloads& guest_accepts) {
  Offloads o;
  o.csum = guest_accepts.csum && supported_.csum;
  o.tso4 = o.csum && guest_accepts.tso4 && supported_.tso4;
  o.tso6 = o.csum && guest_accepts.tso6 && supported_.tso6;
  if (ioctl(fd_, TUNSETOFFLOAD, TunFlags(o)) != 0) {
    return absl::InternalError(absl::StrCat("tap ", name_, ": TUNSETOFFLOAD: ", strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status TapBackend::Send(absl::Span<const iovec> iov) {
  while (true) {
    const ssize_t n = writev(fd_, iov.data(), static_cast<int>(iov.size()));
    if (n >= 0) return absl::OkStatus();
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return absl::UnavailableError("tap queue full");
    return absl::InternalError(absl::StrCat("tap ", name_, " write: ", strerror(errno)));
  }
}

absl::StatusOr<size_t> TapBackend::Receive(absl::Span<uint8_t> buf) {
  while (true) {
    const ssize_t n = read(fd_, buf.data(), buf.size());
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return 0;
    return absl::InternalError(absl::StrCat("tap ", name_, " read: ", strerror(errno)));
  }
}

}  // namespace amalgam::virtio::net
