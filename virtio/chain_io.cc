#include "virtio/chain_io.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace amalgam::virtio {

ChainCursor::ChainCursor(const std::vector<ChainBuffer>& buffers) : buffers_(buffers) {
  for (const ChainBuffer& b : buffers_) remaining_ += b.len;
}

absl::Status ChainCursor::Consume(uint64_t len,
                                  absl::FunctionRef<absl::Status(GuestAddress, uint64_t)> fn) {
  if (len > remaining_) {
    return absl::OutOfRangeError(
        absl::StrCat("descriptor chain has ", remaining_, " bytes left, need ", len));
  }
  while (len > 0) {
    const ChainBuffer& b = buffers_[index_];
    const uint64_t n = std::min<uint64_t>(len, b.len - offset_);
    if (n > 0) {
      absl::Status s = fn(b.addr.UncheckedAdd(offset_), n);  // ParseChain checked the range
      if (!s.ok()) return s;
    }
    offset_ += n;
    len -= n;
    remaining_ -= n;
    if (offset_ == b.len) {
      ++index_;
      offset_ = 0;
    }
  }
  return absl::OkStatus();
}

absl::Status ChainReader::Read(absl::Span<uint8_t> out) {
  uint64_t done = 0;
  return cursor_.Consume(out.size(), [&](GuestAddress a, uint64_t n) {
    absl::Status s = mem_.Read(a, out.subspan(done, n));
    done += n;
    return s;
  });
}

absl::Status ChainReader::ForEach(uint64_t len,
                                  absl::FunctionRef<absl::Status(const uint8_t*, uint64_t)> fn) {
  return cursor_.Consume(len, [&](GuestAddress a, uint64_t n) -> absl::Status {
    absl::StatusOr<uint8_t*> p = mem_.GetHostAddress(a, n);
    if (!p.ok()) return p.status();
    return fn(*p, n);
  });
}

absl::Status ChainWriter::Write(absl::Span<const uint8_t> data) {
  uint64_t done = 0;
  absl::Status s = cursor_.Consume(data.size(), [&](GuestAddress a, uint64_t n) {
    absl::Status st = mem_.Write(a, data.subspan(done, n));
    done += n;
    return st;
  });
  if (s.ok()) written_ += static_cast<uint32_t>(data.size());
  return s;
}

absl::Status ChainWriter::ForEach(uint64_t len,
                                  absl::FunctionRef<absl::Status(uint8_t*, uint64_t)> fn) {
  absl::Status s = cursor_.Consume(len, [&](GuestAddress a, uint64_t n) -> absl::Status {
    absl::StatusOr<uint8_t*> p = mem_.GetHostAddress(a, n);
    if (!p.ok()) return p.status();
    absl::Status st = mem_.MarkDirty(a, n);
    if (!st.ok()) return st;
    return fn(*p, n);
  });
  if (s.ok()) written_ += static_cast<uint32_t>(len);
  return s;
}

}  // namespace amalgam::virtio
