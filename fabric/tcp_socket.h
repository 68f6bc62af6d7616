// Small POSIX socket helpers for TcpTransport (internal). Each returns a status naming the call.
// Thread-safety: reentrant. Returned fds are owned by the caller.
#ifndef AMALGAM_FABRIC_TCP_SOCKET_H_
#define AMALGAM_FABRIC_TCP_SOCKET_H_

#include <sys/uio.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace amalgam::fabric {

// Non-blocking listening socket on host:port (SO_REUSEADDR). Returns the fd.
absl::StatusOr<int> ListenTcp(const std::string& address);
int LocalPort(int fd);
// Blocking connect with a timeout; the returned fd is non-blocking with TCP_NODELAY set.
absl::StatusOr<int> ConnectTcp(const std::string& address, absl::Duration timeout);
// Sets O_NONBLOCK, TCP_NODELAY and close-on-exec on an accepted socket.
void PrepareSocket(int fd);
// Writes all of `iov` to a non-blocking socket, waiting (poll) for room at most `timeout` in
// total. On failure some bytes may have been written: the stream is then unusable.
absl::Status WriteAll(int fd, struct iovec* iov, int iovcnt, absl::Duration timeout);

}  // namespace amalgam::fabric

#endif  // AMALGAM_FABRIC_TCP_SOCKET_H_
