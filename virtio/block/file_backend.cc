#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "virtio/block/block_backend.h"

namespace amalgam::virtio::block {
namespace {

absl::Status ErrnoError(int err, const std::string& what) {
  const std::string msg = absl::StrCat(what, ": ", strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(msg);
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(msg);
    case EOPNOTSUPP:
      return absl::UnimplementedError(msg);
    default:
      return absl::InternalError(msg);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<FileBackend>> FileBackend::Open(const std::string& path,
                                                               bool read_only) {
  const int fd = open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, absl::StrCat("disk ", path));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    return ErrnoError(err, absl::StrCat("disk ", path, ": fstat"));
  }
  uint64_t size = 0;
  const bool regular = S_ISREG(st.st_mode);
  if (regular) {
    size = static_cast<uint64_t>(st.st_size);
  } else if (S_ISBLK(st.st_mode)) {
    if (ioctl(fd, BLKGETSIZE64, &size) != 0) {
      const int err = errno;
      close(fd);
      return ErrnoError(err, absl::StrCat("disk ", path, ": BLKGETSIZE64"));
    }
  } else {
    close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat("disk ", path, " is neither a regular file nor a block device"));
  }
  // The serial: device and inode identify the file on this host; 20 bytes at most.
  std::string id = absl::StrCat("amalgam-", absl::Hex(st.st_dev), "-", absl::Hex(st.st_ino));
  if (id.size() > 20) id.resize(20);
  return std::unique_ptr<FileBackend>(new FileBackend(fd, size, read_only, regular, id));
}

FileBackend::~FileBackend() { close(fd_); }

absl::Status FileBackend::ReadAt(uint64_t offset, absl::Span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = pread(fd_, out.data() + done, out.size() - done, offset + done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, absl::StrCat("pread at ", offset + done));
    if (n == 0) return absl::DataLossError(absl::StrCat("pread at ", offset + done, ": EOF"));
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status FileBackend::WriteAt(uint64_t offset, absl::Span<const uint8_t> data) {
  if (read_only_) return absl::PermissionDeniedError("disk is read-only");
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = pwrite(fd_, data.data() + done, data.size() - done, offset + done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, absl::StrCat("pwrite at ", offset + done));
    if (n == 0) return absl::DataLossError(absl::StrCat("pwrite at ", offset + done, ": 0"));
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status FileBackend::Flush() {
  if (read_only_) return absl::OkStatus();
  if (fdatasync(fd_) != 0) return ErrnoError(errno, "fdatasync");
  return absl::OkStatus();
}

absl::Status FileBackend::Discard(uint64_t offset, uint64_t len) {
  if (!supports_discard()) return absl::UnimplementedError("discard not supported");
  if (fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                static_cast<off_t>(len)) != 0) {
    return ErrnoError(errno, "fallocate(PUNCH_HOLE)");
  }
  return absl::OkStatus();
}

}  // namespace amalgam::virtio::block
