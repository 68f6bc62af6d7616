// TcpFrameReader: cuts one TCP byte stream into fabric frames with as few read() calls as it can
// and without copying: bytes are read in bulk into a chunk, and each complete frame is handed out
// as a FrameBuffer that points into the chunk and keeps it alive (a chunk is freed, or reused,
// once every frame cut from it is released). One read() usually brings a whole frame (a lone
// request or reply) or many (a stream of pages); the old reader needed a header read and a body
// read per frame.
// Invariant that keeps it copy-free: bulk reads stop max_frame bytes before the chunk's end, so a
// frame that starts in a chunk always fits in it, and the rest of a frame whose header is known
// is read exactly. The only copy: when max_frame grows (handshake done) and a partial frame sits
// too close to the end of the small handshake chunk, its bytes move to a new chunk, once.
// Only fixed header fields are read before the frame is complete (PeekFrameSize); nothing else.
// Thread-safety: not thread-safe (one per connection, used by whoever polls it). The frames it
// returns may be released on any thread.
#ifndef AMALGAM_FABRIC_TCP_FRAME_READER_H_
#define AMALGAM_FABRIC_TCP_FRAME_READER_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "fabric/drop_counters.h"
#include "fabric/message.h"

namespace amalgam::fabric {

class TcpFrameReader {
 public:
  enum class Take { kFrame, kNone, kBad };
  enum class Fill { kFull, kShort, kWouldBlock, kClosed };

  // The next complete buffered frame, if any (no syscall). kBad: the stream is out of sync
  // (*why from PeekFrameSize) or the frame is larger than `max_frame` (*why = `over_limit`).
  Take TakeFrame(size_t max_frame, DropReason over_limit, FrameBuffer* out, DropReason* why);
  // One read() from `fd` (non-blocking). kShort: fewer bytes than asked, the socket is probably
  // drained (let epoll report more); kFull: it may hold more; kClosed: EOF or a socket error.
  Fill FillFrom(int fd, size_t max_frame);
  // Bytes of an incomplete frame are buffered (a disconnect now truncates a frame).
  bool mid_frame() const { return end_ > pos_; }

 private:
  struct Chunk;
  // Makes room so that a frame starting at pos_ and up to max_frame bytes long fits.
  void Prepare(size_t max_frame);

  std::shared_ptr<Chunk> chunk_;
  size_t pos_ = 0;  // first byte not yet handed out
  size_t end_ = 0;  // one past the last byte read
};

}  // namespace amalgam::fabric

#endif  // AMALGAM_FABRIC_TCP_FRAME_READER_H_
