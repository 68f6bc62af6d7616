// ChainReader / ChainWriter: sequential access to the device-readable and device-writable
// buffers of a parsed DescriptorChain, so devices never index guest buffers by hand. A read
// past the readable bytes, or a write past the writable bytes (e.g. a status byte the guest put
// in a read-only descriptor), is an error instead of a stray access.
// Ownership: both borrow the chain and the memory. Thread-safety: not thread-safe.
#ifndef AMALGAM_VIRTIO_CHAIN_IO_H_
#define AMALGAM_VIRTIO_CHAIN_IO_H_

#include <cstdint>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/types/span.h"
#include "virtio/queue.h"

namespace amalgam::virtio {

// A cursor over a list of buffers.
class ChainCursor {
 public:
  explicit ChainCursor(const std::vector<ChainBuffer>& buffers);
  uint64_t remaining() const { return remaining_; }
  // Calls fn(guest address, length) for the next `len` bytes, piece by piece, and advances.
  // OUT_OF_RANGE (nothing consumed) if fewer than `len` bytes remain.
  absl::Status Consume(uint64_t len, absl::FunctionRef<absl::Status(GuestAddress, uint64_t)> fn);

 private:
  const std::vector<ChainBuffer>& buffers_;
  size_t index_ = 0;
  uint64_t offset_ = 0;  // into buffers_[index_]
  uint64_t remaining_ = 0;
};

class ChainReader {
 public:
  ChainReader(const GuestMemory& mem, const DescriptorChain& chain)
      : mem_(mem), cursor_(chain.readable) {}
  uint64_t remaining() const { return cursor_.remaining(); }
  absl::Status Read(absl::Span<uint8_t> out);
  template <typename T>
  absl::Status ReadObj(T* out) {
    return Read(absl::MakeSpan(reinterpret_cast<uint8_t*>(out), sizeof(T)));
  }
  // Hands out the next `len` readable bytes as host pointers (for zero-copy I/O).
  absl::Status ForEach(uint64_t len, absl::FunctionRef<absl::Status(const uint8_t*, uint64_t)> fn);

 private:
  const GuestMemory& mem_;
  ChainCursor cursor_;
};

class ChainWriter {
 public:
  ChainWriter(GuestMemory& mem, const DescriptorChain& chain)
      : mem_(mem), cursor_(chain.writable) {}
  uint64_t remaining() const { return cursor_.remaining(); }
  uint32_t written() const { return written_; }
  absl::Status Write(absl::Span<const uint8_t> data);
  // Hands out the next `len` writable bytes as host pointers (marked dirty) for zero-copy I/O.
  absl::Status ForEach(uint64_t len, absl::FunctionRef<absl::Status(uint8_t*, uint64_t)> fn);

 private:
  GuestMemory& mem_;
  ChainCursor cursor_;
  uint32_t written_ = 0;  // chains are capped at 2^32 - 1 bytes by ParseChain
};

}  // namespace amalgam::virtio

#endif  // AMALGAM_VIRTIO_CHAIN_IO_H_
