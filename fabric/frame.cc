#include "fabric/frame.h"

#include <sodium.h>

#include <cstring>

#include "absl/strings/str_cat.h"

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

void ComputeMac(const FrameKey& key, const uint8_t* header, absl::Span<const uint8_t> body,
                absl::Span<const uint8_t> payload, uint8_t out[kFrameMacSize]) {
  static const bool sodium_ready = sodium_init() >= 0;  // picks the fast BLAKE2b code once
  (void)sodium_ready;
  crypto_generichash_state st;
  crypto_generichash_init(&st, key.bytes().data(), key.bytes().size(), kFrameMacSize);
  crypto_generichash_update(&st, header, kFrameHeaderSize);
  if (!body.empty()) crypto_generichash_update(&st, body.data(), body.size());
  if (!payload.empty()) crypto_generichash_update(&st, payload.data(), payload.size());
  crypto_generichash_final(&st, out, kFrameMacSize);
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
  ComputeMac(key, out->header, body, payload, out->mac);
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
  uint8_t mac[kFrameMacSize];
  ComputeMac(key, frame.data(), frame.subspan(kFrameHeaderSize, h.body_len),
             frame.subspan(kFrameHeaderSize + h.body_len, h.payload_len), mac);
  if (sodium_memcmp(mac, frame.data() + frame.size() - kFrameMacSize, kFrameMacSize) != 0) {
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
