#include "vmm/devices/input_pump.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace amalgam::vmm::devices {
namespace {

// How long to wait before retrying when the guest has not made room in the receive queue. The
// guest drains it at its own pace; polling this slowly costs nothing measurable.
constexpr int kFullRetryMs = 10;

}  // namespace

absl::StatusOr<std::unique_ptr<InputPump>> InputPump::Start(int fd, Serial16550* uart) {
  int wake[2];
  if (::pipe2(wake, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("input pump: pipe2: ", strerror(errno)));
  }
  std::unique_ptr<InputPump> pump(new InputPump(fd, uart, wake[0], wake[1]));
  pump->thread_ = std::thread([p = pump.get()] { p->Loop(); });
  return pump;
}

InputPump::~InputPump() {
  const char stop = 1;
  (void)!::write(wake_write_, &stop, 1);
  if (thread_.joinable()) thread_.join();
  ::close(wake_read_);
  ::close(wake_write_);
}

void InputPump::Loop() {
  uint8_t buf[256];
  size_t have = 0;  // bytes in buf not yet accepted by the UART
  size_t start = 0;
  while (true) {
    pollfd fds[2] = {{wake_read_, POLLIN, 0}, {fd_, static_cast<short>(have ? 0 : POLLIN), 0}};
    int n = ::poll(fds, 2, have ? kFullRetryMs : -1);
    if (n < 0 && errno != EINTR) break;
    if (fds[0].revents != 0) break;
    if (have > 0) {
      size_t room = uart_->InputSpace();
      size_t take = room < have ? room : have;
      if (take > 0) {
        uart_->EnqueueInput(absl::MakeConstSpan(buf + start, take));
        start += take;
        have -= take;
      }
      continue;
    }
    if (fds[1].revents == 0) continue;
    ssize_t got = ::read(fd_, buf, sizeof(buf));
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (got <= 0) break;  // EOF or error: no more input
    start = 0;
    have = static_cast<size_t>(got);
  }
  finished_.store(true);
}

}  // namespace amalgam::vmm::devices
