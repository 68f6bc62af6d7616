#include "fabric/tcp_frame_reader.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

namespace amalgam::fabric {
namespace {

// Bytes a bulk read may bring beyond one maximal frame: ~30 page frames per read() for an
// authenticated link, a little for a connection still in its handshake (memory an
// unauthenticated peer can pin stays small).
constexpr size_t kBulkWindow = 128 * 1024;
constexpr size_t kHandshakeWindow = 1024;

}  // namespace

struct TcpFrameReader::Chunk {
  explicit Chunk(size_t capacity)
      : data(static_cast<uint8_t*>(std::aligned_alloc(16, (capacity + 15) & ~size_t{15}))),
        cap(capacity) {
    if (data == nullptr) throw std::bad_alloc();
  }
  ~Chunk() { std::free(data); }
  Chunk(const Chunk&) = delete;
  Chunk& operator=(const Chunk&) = delete;
  uint8_t* const data;  // 16-aligned, so 8-aligned frames parse in place
  const size_t cap;
};

void TcpFrameReader::Prepare(size_t max_frame) {
  const size_t window = max_frame > kFrameHeaderSize + 1024 ? kBulkWindow : kHandshakeWindow;
  if (chunk_ != nullptr && pos_ == end_ && chunk_.use_count() == 1) {
    pos_ = end_ = 0;  // every frame cut from it is gone: reuse it from the start
  }
  if (chunk_ != nullptr && pos_ + max_frame <= chunk_->cap &&
      (pos_ < end_ || end_ + max_frame < chunk_->cap)) {
    return;
  }
  auto fresh = std::make_shared<Chunk>(max_frame + window);
  if (end_ > pos_) std::memcpy(fresh->data, chunk_->data + pos_, end_ - pos_);  // see header
  end_ -= pos_;
  pos_ = 0;
  chunk_ = std::move(fresh);
}

TcpFrameReader::Take TcpFrameReader::TakeFrame(size_t max_frame, DropReason over_limit,
                                               FrameBuffer* out, DropReason* why) {
  if (end_ - pos_ < kFrameHeaderSize) return Take::kNone;
  const uint8_t* start = chunk_->data + pos_;
  auto size = PeekFrameSize(absl::MakeConstSpan(start, kFrameHeaderSize), why);
  if (!size.ok()) return Take::kBad;
  if (*size > max_frame) {
    *why = over_limit;
    return Take::kBad;
  }
  if (end_ - pos_ < *size) return Take::kNone;
  std::shared_ptr<Chunk> keep = chunk_;
  *out = FrameBuffer(chunk_->data + pos_, *size, [keep]() mutable { keep.reset(); });
  pos_ += *size;
  return Take::kFrame;
}

TcpFrameReader::Fill TcpFrameReader::FillFrom(int fd, size_t max_frame) {
  Prepare(max_frame);
  // Read up to the bulk limit, or exactly to the end of a frame (or header) that crosses it.
  size_t limit = chunk_->cap - max_frame;
  size_t need = kFrameHeaderSize;
  if (end_ - pos_ >= kFrameHeaderSize) {
    DropReason ignored;
    auto size = PeekFrameSize(absl::MakeConstSpan(chunk_->data + pos_, kFrameHeaderSize), &ignored);
    // TakeFrame already refused a bad header; here a valid one is known.
    need = size.ok() ? std::min(*size, max_frame) : kFrameHeaderSize;
  }
  limit = std::max(limit, pos_ + need);
  const size_t want = limit - end_;
  for (;;) {
    ssize_t n = ::read(fd, chunk_->data + end_, want);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Fill::kWouldBlock;
    if (n <= 0) return Fill::kClosed;
    end_ += static_cast<size_t>(n);
    return static_cast<size_t>(n) < want ? Fill::kShort : Fill::kFull;
  }
}

}  // namespace amalgam::fabric
