#include "fabric/frame.h"

#include <pthread.h>
#include <sodium.h>

#include <atomic>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fabric/frame_mac.h"

namespace amalgam::fabric {
namespace {

// Little-endian field access that never depends on host alignment.
template <typename T>
void Put(uint8_t* p, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
template <typename T>
T Get(const uint8_t* p) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(p[i]) << (8 * i);
  return v;
}

absl::Status Drop(DropReason reason, DropReason* why, absl::string_view what) {
  if (why != nullptr) *why = reason;
  return absl::InvalidArgumentError(
      absl::StrCat("fabric frame dropped (", DropReasonName(reason), "): ", what));
}

// The 32-byte trailer: a 12-byte nonce, the 16-byte AES-256-GMAC tag (frame_mac.h), 4 zero
// bytes. GMAC is safe only if a nonce never repeats under one key, so nonces are not left to
// callers: 8 random bytes drawn per process (redrawn in a forked child) plus a 64-bit counter,
// spread as prefix + (count >> 32) | count.
constexpr size_t kNonceBytes = kMacNonceBytes;
constexpr size_t kTagBytes = kMacTagBytes;

struct NonceSource {
  NonceSource() {
    (void)sodium_init();  // idempotent; randombytes needs it
    Reseed();
    pthread_atfork(nullptr, nullptr, [] { Get().Reseed(); });
  }
  static NonceSource& Get() {
    static NonceSource* source = new NonceSource();
    return *source;
  }
  void Reseed() {
    uint64_t p;
    randombytes_buf(&p, sizeof(p));
    prefix.store(p);
  }
  void Next(uint8_t out[kNonceBytes]) {
    uint64_t c = counter.fetch_add(1, std::memory_order_relaxed);
    Put<uint64_t>(out, prefix.load(std::memory_order_relaxed) + (c >> 32));
    Put<uint32_t>(out + 8, static_cast<uint32_t>(c));
  }
  std::atomic<uint64_t> prefix{0};
  std::atomic<uint64_t> counter{0};
};

absl::Status NoAesGcm() {
  return absl::FailedPreconditionError(
      "fabric wire version 2 authenticates frames with AES-256-GMAC, which needs AES-NI and "
      "PCLMULQDQ; this CPU (or VM CPU model) lacks them: expose them to the VM (e.g. -cpu host)");
}

// The sender's frame is a gather list, but GCM takes its additional data in one piece: the
// parts are gathered into a per-thread buffer first (a 4 KiB copy costs ~40 ns here, a tenth of
// what GMAC saves over Poly1305). The wire still carries the caller's buffers, uncopied.
void TagParts(const FrameMacKey& mac, const uint8_t nonce[kNonceBytes], const uint8_t* header,
              absl::Span<const uint8_t> body, absl::Span<const uint8_t> payload,
              uint8_t tag[kTagBytes]) {
  thread_local std::vector<uint8_t> scratch;
  const size_t n = kFrameHeaderSize + body.size() + payload.size();
  if (scratch.size() < n) scratch.resize(kMaxFrameSize);
  std::memcpy(scratch.data(), header, kFrameHeaderSize);
  if (!body.empty()) std::memcpy(scratch.data() + kFrameHeaderSize, body.data(), body.size());
  if (!payload.empty()) {
    std::memcpy(scratch.data() + kFrameHeaderSize + body.size(), payload.data(), payload.size());
  }
  mac.Tag(nonce, absl::MakeConstSpan(scratch.data(), n), tag);
}

}  // namespace

void WriteFrameHeader(const FrameHeader& h, uint8_t out[kFrameHeaderSize]) {
  Put<uint32_t>(out + 0, h.magic);
  out[4] = h.version;
  out[5] = h.flags;
  Put<uint16_t>(out + 6, h.type);
  Put<uint32_t>(out + 8, h.src);
  Put<uint32_t>(out + 12, h.dst);
  Put<uint64_t>(out + 16, h.seq);
  Put<uint64_t>(out + 24, h.rpc_id);
  Put<uint32_t>(out + 32, h.body_len);
  Put<uint32_t>(out + 36, h.payload_len);
  Put<uint16_t>(out + 40, h.frag_index);
  Put<uint16_t>(out + 42, h.frag_count);
  Put<uint32_t>(out + 44, h.reserved);
}

FrameHeader ReadFrameHeader(const uint8_t in[kFrameHeaderSize]) {
  FrameHeader h;
  h.magic = Get<uint32_t>(in + 0);
  h.version = in[4];
  h.flags = in[5];
  h.type = Get<uint16_t>(in + 6);
  h.src = Get<uint32_t>(in + 8);
  h.dst = Get<uint32_t>(in + 12);
  h.seq = Get<uint64_t>(in + 16);
  h.rpc_id = Get<uint64_t>(in + 24);
  h.body_len = Get<uint32_t>(in + 32);
  h.payload_len = Get<uint32_t>(in + 36);
  h.frag_index = Get<uint16_t>(in + 40);
  h.frag_count = Get<uint16_t>(in + 42);
  h.reserved = Get<uint32_t>(in + 44);
  return h;
}

absl::StatusOr<size_t> PeekFrameSize(absl::Span<const uint8_t> first_bytes, DropReason* why) {
  if (first_bytes.size() < kFrameHeaderSize) {
    return Drop(DropReason::kTooShort, why, "shorter than the 48-byte header");
  }
  FrameHeader h = ReadFrameHeader(first_bytes.data());
  if (h.magic != kFrameMagic) return Drop(DropReason::kBadMagic, why, "bad magic");
  if (h.version != kWireVersion) {
    return Drop(DropReason::kBadVersion, why,
                absl::StrCat("wire version ", h.version, ", this node speaks ", kWireVersion));
  }
  if (h.body_len > kMaxBodySize || h.payload_len > kMaxPayloadSize) {
    return Drop(DropReason::kTooLong, why,
                absl::StrCat("body ", h.body_len, " / payload ", h.payload_len,
                             " bytes exceed the limits ", kMaxBodySize, " / ", kMaxPayloadSize));
  }
  if (h.body_len % 8 != 0 || h.reserved != 0 || h.frag_count == 0 || h.frag_index >= h.frag_count) {
    return Drop(DropReason::kBadLength, why, "malformed length, fragment or reserved field");
  }
  return FrameSize(h.body_len, h.payload_len);
}

int EncodedFrame::ToIovec(struct iovec out[4]) const {
  int n = 0;
  out[n++] = {const_cast<uint8_t*>(header), kFrameHeaderSize};
  if (!body.empty()) out[n++] = {const_cast<uint8_t*>(body.data()), body.size()};
  if (!payload.empty()) out[n++] = {const_cast<uint8_t*>(payload.data()), payload.size()};
  out[n++] = {const_cast<uint8_t*>(mac), kFrameMacSize};
  return n;
}

void EncodedFrame::CopyTo(uint8_t* out) const {
  std::memcpy(out, header, kFrameHeaderSize);
  out += kFrameHeaderSize;
  if (!body.empty()) std::memcpy(out, body.data(), body.size());
  out += body.size();
  if (!payload.empty()) std::memcpy(out, payload.data(), payload.size());
  out += payload.size();
  std::memcpy(out, mac, kFrameMacSize);
}

absl::Status CheckFrameMacSupport() {
  static const bool available = FrameKey::FromBytes({}).mac_key().available();
  return available ? absl::OkStatus() : NoAesGcm();
}

absl::Status EncodeFrame(const FrameKey& key, const FrameHeader& header,
                         absl::Span<const uint8_t> body, absl::Span<const uint8_t> payload,
                         EncodedFrame* out) {
  if (body.size() > kMaxBodySize || body.size() % 8 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "fabric frame body is ", body.size(), " bytes; it must be a multiple of 8 and at most ",
        kMaxBodySize, " (a flat Cap'n Proto message)"));
  }
  if (payload.size() > kMaxPayloadSize) {
    return absl::InvalidArgumentError(absl::StrCat("fabric frame payload is ", payload.size(),
                                                   " bytes; at most ", kMaxPayloadSize,
                                                   " (one page) may travel per frame"));
  }
  FrameHeader h = header;
  h.magic = kFrameMagic;
  h.version = kWireVersion;
  h.body_len = static_cast<uint32_t>(body.size());
  h.payload_len = static_cast<uint32_t>(payload.size());
  h.reserved = 0;
  if (h.frag_count == 0) h.frag_count = 1;
  WriteFrameHeader(h, out->header);
  out->body = body;
  out->payload = payload;
  std::memset(out->mac, 0, kFrameMacSize);  // a refused frame carries a zero (invalid) trailer
  if (!key.mac_key().available()) return NoAesGcm();
  NonceSource::Get().Next(out->mac);
  TagParts(key.mac_key(), out->mac, out->header, body, payload, out->mac + kNonceBytes);
  return absl::OkStatus();
}

absl::StatusOr<FrameHeader> VerifyFrame(const FrameKey& key, absl::Span<const uint8_t> frame,
                                        NodeId self, DropReason* why) {
  if (frame.size() < kMinFrameSize) {
    return Drop(DropReason::kTooShort, why, absl::StrCat(frame.size(), " bytes"));
  }
  if (frame.size() > kMaxFrameSize) {
    return Drop(DropReason::kTooLong, why, absl::StrCat(frame.size(), " bytes"));
  }
  auto size = PeekFrameSize(frame, why);
  if (!size.ok()) return size.status();
  if (*size != frame.size()) {
    return Drop(DropReason::kBadLength, why,
                absl::StrCat("header says ", *size, " bytes, frame has ", frame.size()));
  }
  FrameHeader h = ReadFrameHeader(frame.data());
  if (!key.mac_key().available()) {
    return Drop(DropReason::kBadMac, why, NoAesGcm().message());
  }
  const uint8_t* trailer = frame.data() + frame.size() - kFrameMacSize;
  uint8_t tag[kTagBytes];
  key.mac_key().Tag(trailer, frame.first(frame.size() - kFrameMacSize), tag);
  static const uint8_t kZero[kFrameMacSize - kNonceBytes - kTagBytes] = {};
  if (sodium_memcmp(tag, trailer + kNonceBytes, kTagBytes) != 0 ||
      sodium_memcmp(kZero, trailer + kNonceBytes + kTagBytes, sizeof(kZero)) != 0) {
    return Drop(DropReason::kBadMac, why, "authentication failed (wrong cluster key or forged)");
  }
  bool handshake = (h.flags & kFlagHandshake) != 0;
  if (h.dst != self && !(handshake && h.dst == kAnyNode)) {
    return Drop(DropReason::kWrongDestination, why,
                absl::StrCat("addressed to node ", h.dst, ", this is node ", self));
  }
  return h;
}

}  // namespace amalgam::fabric
