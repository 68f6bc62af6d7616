#include "vmm/devices/byte_sink.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace amalgam::vmm::devices {

FdSink::~FdSink() {
  if (owned_ && fd_ >= 0) ::close(fd_);
}

absl::StatusOr<std::unique_ptr<FdSink>> FdSink::OpenFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--serial-out %s: cannot open for writing: %s", path, strerror(errno)));
  }
  return std::make_unique<FdSink>(fd, /*owned=*/true);
}

void FdSink::Write(absl::Span<const uint8_t> bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      dropped_ += bytes.size() - done;
      return;
    }
    done += static_cast<size_t>(n);
  }
}

}  // namespace amalgam::vmm::devices
