// Messages as transports see them: an outgoing frame (borrowed parts, no page copy) and a
// received one (owns its receive buffer; the page is a span into it, not a copy).
#ifndef AMALGAM_FABRIC_MESSAGE_H_
#define AMALGAM_FABRIC_MESSAGE_H_

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "fabric/frame.h"
#include "fabric/schema/messages.capnp.h"

namespace amalgam::fabric {

// First-segment size for building one fabric message: capnp::MallocMessageBuilder
// b(kMessageFirstSegmentWords). Every schema::Message but a VcpuMigrate fits in 64 words, and the
// builder's default first segment (1024 words) is an 8 KiB calloc per message (~0.1-0.2 us).
inline constexpr unsigned kMessageFirstSegmentWords = 64;

// What a sender hands a transport. Every span is borrowed for the duration of the Send call.
struct OutgoingFrame {
  uint16_t type = 0;  // static_cast<uint16_t>(schema::Message::Which) of `body`
  uint8_t flags = 0;  // kFlagRpcRequest / kFlagRpcReply
  uint64_t rpc_id = 0;
  absl::Span<const uint8_t> body;     // flat Cap'n Proto message (capnp::messageToFlatArray)
  absl::Span<const uint8_t> payload;  // optional raw page, at most kMaxPayloadSize bytes
};

// A schema::Message flattened for sending (one small copy of the header, never of the page).
// Thread-safety: immutable after construction. Owns the flat words.
class FlatMessage {
 public:
  // `builder` must have a schema::Message root.
  explicit FlatMessage(capnp::MessageBuilder& builder);
  FlatMessage(FlatMessage&&) = default;
  FlatMessage& operator=(FlatMessage&&) = default;

  absl::Span<const uint8_t> bytes() const {
    return absl::Span<const uint8_t>(words_.asBytes().begin(), words_.asBytes().size());
  }
  uint16_t type() const { return type_; }
  OutgoingFrame Frame(absl::Span<const uint8_t> payload = {}, uint64_t rpc_id = 0,
                      uint8_t flags = 0) const;

 private:
  kj::Array<capnp::word> words_;
  uint16_t type_ = 0;
};

// Bytes of one received frame. Heap buffers are 16-byte aligned; a transport may instead wrap
// memory it owns (a DPDK mbuf, a ring slot) and get `release` called when the message dies.
// Thread-safety: not thread-safe; move-only; owns (or releases) its bytes.
class FrameBuffer {
 public:
  FrameBuffer() = default;
  static FrameBuffer Allocate(size_t size);
  FrameBuffer(uint8_t* data, size_t size, std::function<void()> release);
  ~FrameBuffer();
  FrameBuffer(FrameBuffer&& other) noexcept;
  FrameBuffer& operator=(FrameBuffer&& other) noexcept;
  FrameBuffer(const FrameBuffer&) = delete;
  FrameBuffer& operator=(const FrameBuffer&) = delete;

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  absl::Span<const uint8_t> span() const { return absl::Span<const uint8_t>(data_, size_); }
  // Keeps only the first `size` bytes visible (size <= size()).
  void Truncate(size_t size) { size_ = size < size_ ? size : size_; }

 private:
  void Release();
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::function<void()> release_;
};

// One authenticated, validated message. The Cap'n Proto body is read in place when the buffer is
// word-aligned at the body (else only the body, never the page, is copied to an aligned buffer).
// Thread-safety: not thread-safe; move-only; owns the frame's buffer.
class ReceivedMessage {
 public:
  // Validates the body of a frame that VerifyFrame already accepted (header is its result):
  // the Cap'n Proto message must be well-formed, fully traversable within limits, and its union
  // member must match header.type. Returns INVALID_ARGUMENT (a kBadBody drop) otherwise.
  static absl::StatusOr<ReceivedMessage> Parse(FrameBuffer frame, const FrameHeader& header);

  ReceivedMessage(ReceivedMessage&&) = default;
  ReceivedMessage& operator=(ReceivedMessage&&) = default;

  const FrameHeader& header() const { return header_; }
  NodeId source() const { return header_.src; }
  uint64_t rpc_id() const { return header_.rpc_id; }
  uint64_t sequence() const { return header_.seq; }
  schema::Message::Which type() const { return static_cast<schema::Message::Which>(header_.type); }
  schema::Message::Reader message() const;
  // The raw payload (a page) as a view into the receive buffer; empty if none.
  absl::Span<const uint8_t> page() const {
    return absl::Span<const uint8_t>(buffer_.data() + kFrameHeaderSize + header_.body_len,
                                     header_.payload_len);
  }

 private:
  ReceivedMessage() = default;
  FrameBuffer buffer_;
  FrameHeader header_;
  std::unique_ptr<capnp::word[]> aligned_body_;  // only when the body was misaligned
  std::unique_ptr<capnp::FlatArrayMessageReader> reader_;
};

}  // namespace amalgam::fabric

#endif  // AMALGAM_FABRIC_MESSAGE_H_
