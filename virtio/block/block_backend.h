// BlockBackend: where a virtio-blk device's sectors live (a host file today; a file on another
// node later). FileBackend: a host file or block device through pread/pwrite, fdatasync for
// FLUSH (real durability) and fallocate(PUNCH_HOLE) for DISCARD.
// Ownership: FileBackend owns its fd. Thread-safety: implementations must allow concurrent
// calls (pread/pwrite are positionless); the device serializes its own calls anyway.
#ifndef AMALGAM_VIRTIO_BLOCK_BLOCK_BACKEND_H_
#define AMALGAM_VIRTIO_BLOCK_BLOCK_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace amalgam::virtio::block {

class BlockBackend {
 public:
  virtual ~BlockBackend() = default;
  virtual uint64_t size_bytes() const = 0;
  virtual bool read_only() const = 0;
  virtual bool supports_discard() const = 0;
  // The serial the guest sees through GET_ID (at most 20 bytes are used).
  virtual std::string id() const = 0;
  // Whole-range I/O: a short transfer is an error (DATA_LOSS/INTERNAL naming errno).
  virtual absl::Status ReadAt(uint64_t offset, absl::Span<uint8_t> out) = 0;
  virtual absl::Status WriteAt(uint64_t offset, absl::Span<const uint8_t> data) = 0;
  // Everything written so far is on stable storage when this returns OK.
  virtual absl::Status Flush() = 0;
  // The range reads back as zeros afterwards and its space may be given back to the host.
  virtual absl::Status Discard(uint64_t offset, uint64_t len) = 0;
};

class FileBackend : public BlockBackend {
 public:
  // Opens `path` (a regular file or a block device); read-only opens it O_RDONLY. Errors name
  // the path and errno (NOT_FOUND, PERMISSION_DENIED, INVALID_ARGUMENT for other file kinds).
  static absl::StatusOr<std::unique_ptr<FileBackend>> Open(const std::string& path, bool read_only);
  ~FileBackend() override;
  FileBackend(const FileBackend&) = delete;
  FileBackend& operator=(const FileBackend&) = delete;

  uint64_t size_bytes() const override { return size_; }
  bool read_only() const override { return read_only_; }
  bool supports_discard() const override { return !read_only_ && regular_file_; }
  std::string id() const override { return id_; }
  absl::Status ReadAt(uint64_t offset, absl::Span<uint8_t> out) override;
  absl::Status WriteAt(uint64_t offset, absl::Span<const uint8_t> data) override;
  absl::Status Flush() override;
  absl::Status Discard(uint64_t offset, uint64_t len) override;

 private:
  FileBackend(int fd, uint64_t size, bool read_only, bool regular, std::string id)
      : fd_(fd), size_(size), read_only_(read_only), regular_file_(regular), id_(std::move(id)) {}
  const int fd_;
  const uint64_t size_;
  const bool read_only_;
  const bool regular_file_;
  const std::string id_;
};

}  // namespace amalgam::virtio::block

#endif  // AMALGAM_VIRTIO_BLOCK_BLOCK_BACKEND_H_
