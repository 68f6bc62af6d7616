#include "fabric/tcp_socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "fabric/tcp_transport.h"

namespace amalgam::fabric {
namespace {

absl::Status Errno(absl::string_view what, const std::string& address) {
  int e = errno;
  return absl::UnavailableError(absl::StrCat(what, " ", address, ": ", std::strerror(e)));
}

absl::StatusOr<sockaddr_in> Resolve(const std::string& address) {
  std::string host;
  int port = 0;
  absl::Status s = ParseHostPort(address, &host, &port);
  if (!s.ok()) return s;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (host == "localhost") host = "127.0.0.1";
  if (::inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("address ", address, ": host must be an IPv4 address like 10.0.0.2"));
  }
  return sa;
}

}  // namespace

absl::Status ParseHostPort(const std::string& address, std::string* host, int* port) {
  size_t colon = address.rfind(':');
  int p = -1;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(address.substr(colon + 1), &p) || p < 0 || p > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("address '", address, "': want host:port, e.g. 127.0.0.1:7000"));
  }
  *host = address.substr(0, colon);
  *port = p;
  return absl::OkStatus();
}

void PrepareSocket(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
}

absl::StatusOr<int> ListenTcp(const std::string& address) {
  auto sa = Resolve(address);
  if (!sa.ok()) return sa.status();
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket for", address);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&*sa), sizeof(*sa)) != 0 || ::listen(fd, 64) != 0) {
    absl::Status s = Errno("cannot listen on", address);
    ::close(fd);
    return s;
  }
  return fd;
}

int LocalPort(int fd) {
  sockaddr_in sa{};
  socklen_t len = sizeof(sa);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) return -1;
  return ntohs(sa.sin_port);
}

absl::StatusOr<int> ConnectTcp(const std::string& address, absl::Duration timeout) {
  auto sa = Resolve(address);
  if (!sa.ok()) return sa.status();
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket for", address);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&*sa), sizeof(*sa)) != 0) {
    if (errno != EINPROGRESS) {
      absl::Status s = Errno("connect to", address);
      ::close(fd);
      return s;
    }
    pollfd p{fd, POLLOUT, 0};
    int n = ::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
    int err = 0;
    socklen_t len = sizeof(err);
    if (n <= 0) {
      ::close(fd);
      return absl::UnavailableError(absl::StrCat("connect to ", address, ": timed out"));
    }
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      ::close(fd);
      return absl::UnavailableError(absl::StrCat("connect to ", address, ": ", std::strerror(err)));
    }
  }
  PrepareSocket(fd);
  return fd;
}

absl::Status WriteAll(int fd, struct iovec* iov, int iovcnt, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (iovcnt > 0) {
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = iovcnt;
    // MSG_NOSIGNAL: a vanished peer is an error value here, never a SIGPIPE.
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        return absl::UnavailableError(absl::StrCat("fabric send: ", std::strerror(errno)));
      }
      absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) {
        return absl::UnavailableError("fabric send: peer not reading (send timeout)");
      }
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
      continue;
    }
    size_t done = static_cast<size_t>(n);
    while (iovcnt > 0 && done >= iov->iov_len) {
      done -= iov->iov_len;
      ++iov;
      --iovcnt;
    }
    if (iovcnt > 0) {
      iov->iov_base = static_cast<uint8_t*>(iov->iov_base) + done;
      iov->iov_len -= done;
    }
  }
  return absl::OkStatus();
}

}  // namespace amalgam::fabric
