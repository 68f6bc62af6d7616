#include "fabric/message.h"

#include <kj/exception.h>

#include <cstdlib>
#include <cstring>
#include <new>

#include "absl/strings/str_cat.h"
#include "fabric/message_validate.h"

namespace amalgam::fabric {

FlatMessage::FlatMessage(capnp::MessageBuilder& builder)
    : words_(capnp::messageToFlatArray(builder)),
      type_(static_cast<uint16_t>(builder.getRoot<schema::Message>().which())) {}

OutgoingFrame FlatMessage::Frame(absl::Span<const uint8_t> payload, uint64_t rpc_id,
                                 uint8_t flags) const {
  OutgoingFrame f;
  f.type = type_;
  f.flags = flags;
  f.rpc_id = rpc_id;
  f.body = bytes();
  f.payload = payload;
  return f;
}

FrameBuffer FrameBuffer::Allocate(size_t size) {
  size_t rounded = (size + 15) & ~size_t{15};
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(16, rounded == 0 ? 16 : rounded));
  if (p == nullptr) throw std::bad_alloc();
  return FrameBuffer(p, size, [p] { std::free(p); });
}

FrameBuffer::FrameBuffer(uint8_t* data, size_t size, std::function<void()> release)
    : data_(data), size_(size), release_(std::move(release)) {}

FrameBuffer::~FrameBuffer() { Release(); }

FrameBuffer::FrameBuffer(FrameBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      release_(std::move(other.release_)) {
  other.release_ = nullptr;
}

FrameBuffer& FrameBuffer::operator=(FrameBuffer&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    release_ = std::move(other.release_);
    other.release_ = nullptr;
  }
  return *this;
}

void FrameBuffer::Release() {
  if (release_) release_();
  release_ = nullptr;
  data_ = nullptr;
  size_ = 0;
}

absl::StatusOr<ReceivedMessage> ReceivedMessage::Parse(FrameBuffer frame,
                                                       const FrameHeader& header) {
  if (frame.size() != FrameSize(header.body_len, header.payload_len) || header.body_len == 0) {
    return absl::InvalidArgumentError("fabric frame body: empty or inconsistent with its header");
  }
  ReceivedMessage m;
  m.header_ = header;
  m.buffer_ = std::move(frame);
  const uint8_t* body = m.buffer_.data() + kFrameHeaderSize;
  size_t words = header.body_len / sizeof(capnp::word);
  const capnp::word* start = reinterpret_cast<const capnp::word*>(body);
  if (reinterpret_cast<uintptr_t>(body) % alignof(capnp::word) != 0) {
    // A transport handed us a misaligned buffer: copy only the (small) body.
    m.aligned_body_.reset(new capnp::word[words]);
    std::memcpy(m.aligned_body_.get(), body, header.body_len);
    start = m.aligned_body_.get();
  }
  kj::ArrayPtr<const capnp::word> words_ptr(start, words);
  try {
    // Validation pass: a body of N words can legitimately traverse at most N words, so any
    // amplification (far pointers aiming back at the same data) is refused here.
    capnp::ReaderOptions strict;
    strict.traversalLimitInWords = words;
    strict.nestingLimit = 16;
    capnp::FlatArrayMessageReader check(words_ptr, strict);
    if (check.getEnd() != start + words) {
      return absl::InvalidArgumentError("fabric frame body: trailing bytes after the message");
    }
    // One typed check per message type (message_validate.h says what it covers and why).
    absl::Status valid = ValidateMessageBody(check.getRoot<schema::Message>(), header.type);
    if (!valid.ok()) return valid;
    // The reader the consumer uses keeps capnp's default budget (reads may repeat).
    m.reader_ = std::make_unique<capnp::FlatArrayMessageReader>(words_ptr);
  } catch (const kj::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("fabric frame body: malformed Cap'n Proto: ", e.getDescription().cStr()));
  }
  return m;
}

schema::Message::Reader ReceivedMessage::message() const {
  return reader_->getRoot<schema::Message>();
}

}  // namespace amalgam::fabric
