// The fabric's wire frame: a fixed 48-byte header, a Cap'n Proto body (schema::Message), an
// optional raw payload (one 4 KiB page) and a 32-byte MAC over everything before it.
//
//   offset 0   FrameHeader (48 bytes, little-endian, layout below)
//   offset 48  body      (body_len bytes, a flat Cap'n Proto message with its segment table)
//   ...        payload   (payload_len bytes, raw, e.g. a guest page)
//   ...        MAC       (32 bytes: 12-byte nonce, 16-byte AES-256-GMAC tag over all bytes before
//                          the trailer (frame_mac.h), 4 zero bytes)
//
// A receiver reads only the fixed-size length fields (bounded by kMaxFrameSize) before the MAC is
// verified; nothing else is interpreted until then. Thread-safety: free functions are reentrant.
#ifndef AMALGAM_FABRIC_FRAME_H_
#define AMALGAM_FABRIC_FRAME_H_

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "fabric/cluster_key.h"
#include "fabric/drop_counters.h"

namespace amalgam::fabric {

using NodeId = uint32_t;
inline constexpr NodeId kAnyNode = 0xffffffffu;  // dst wildcard: only valid in Hello frames

inline constexpr uint32_t kFrameMagic = 0x42464d41u;  // bytes "AMFB" on the wire
// Version 2: AES-256-GMAC trailer (version 1 used ChaCha20-keyed Poly1305); peers of another
// version are refused before anything else (kBadVersion). See also Hello's protocolVersion.
inline constexpr uint8_t kWireVersion = 2;
inline constexpr size_t kFrameHeaderSize = 48;
inline constexpr size_t kFrameMacSize = 32;
inline constexpr size_t kPageSize = 4096;
inline constexpr size_t kMaxBodySize = 64 * 1024;  // Cap'n Proto body, bytes (multiple of 8)
inline constexpr size_t kMaxPayloadSize = kPageSize;
inline constexpr size_t kMaxFrameSize =
    kFrameHeaderSize + kMaxBodySize + kMaxPayloadSize + kFrameMacSize;
inline constexpr size_t kMinFrameSize = kFrameHeaderSize + kFrameMacSize;

// FrameHeader.flags bits.
inline constexpr uint8_t kFlagRpcRequest = 0x01;  // rpc_id names a call that wants a reply
inline constexpr uint8_t kFlagRpcReply = 0x02;    // rpc_id names the call this answers
inline constexpr uint8_t kFlagHandshake = 0x04;   // Hello: MAC'd with the cluster key, seq 0

// Decoded form of the 48-byte header. Wire layout (little-endian, no padding):
//   0 magic u32 | 4 version u8 | 5 flags u8 | 6 type u16 | 8 src u32 | 12 dst u32 | 16 seq u64 |
//   24 rpc_id u64 | 32 body_len u32 | 36 payload_len u32 | 40 frag_index u16 |
//   42 frag_count u16 | 44 reserved u32 (must be 0)
// `type` is the ordinal of the schema::Message union member (schema::Message::Which).
// frag_index/frag_count are for transports that split one frame over several link frames
// (DPDK); a complete frame as produced by EncodeFrame has frag_index 0, frag_count 1.
struct FrameHeader {
  uint32_t magic = kFrameMagic;
  uint8_t version = kWireVersion;
  uint8_t flags = 0;
  uint16_t type = 0;
  NodeId src = 0;
  NodeId dst = 0;
  uint64_t seq = 0;
  uint64_t rpc_id = 0;
  uint32_t body_len = 0;
  uint32_t payload_len = 0;
  uint16_t frag_index = 0;
  uint16_t frag_count = 1;
  uint32_t reserved = 0;
};

void WriteFrameHeader(const FrameHeader& header, uint8_t out[kFrameHeaderSize]);
// Reads the fields without validating them.
FrameHeader ReadFrameHeader(const uint8_t in[kFrameHeaderSize]);

// Total size of a frame with these body and payload sizes.
inline size_t FrameSize(size_t body_len, size_t payload_len) {
  return kFrameHeaderSize + body_len + payload_len + kFrameMacSize;
}

// From the first kFrameHeaderSize bytes: checks magic, version, reserved and the length fields
// against the limits, and returns the total frame size. This is all a stream transport may look
// at before it has the whole frame. On failure, *why says which drop counter applies.
absl::StatusOr<size_t> PeekFrameSize(absl::Span<const uint8_t> first_bytes, DropReason* why);

// An encoded frame as a gather list: header and MAC are owned here, body and payload are borrowed
// from the caller and must outlive this object. No page copy is made on the send path.
struct EncodedFrame {
  uint8_t header[kFrameHeaderSize];
  absl::Span<const uint8_t> body;
  absl::Span<const uint8_t> payload;
  uint8_t mac[kFrameMacSize];

  size_t size() const { return FrameSize(body.size(), payload.size()); }
  // Fills up to 4 iovecs (empty parts skipped); returns how many.
  int ToIovec(struct iovec out[4]) const;
  // Copies the whole frame to `out` (must hold size() bytes).
  void CopyTo(uint8_t* out) const;
};

// OK if this CPU can compute the frame MAC (AES-NI + PCLMULQDQ, frame_mac.h); otherwise
// FAILED_PRECONDITION saying what is missing. Transports check it when they are created.
absl::Status CheckFrameMacSupport();

// Fills header lengths and magic/version, then the MAC over header+body+payload with `key` and a
// fresh nonce (never repeated within a process; callers need not make frames unique).
// Fails (INVALID_ARGUMENT) if body > kMaxBodySize, body not a multiple of 8, or payload >
// kMaxPayloadSize; FAILED_PRECONDITION if the CPU lacks AES-NI/PCLMULQDQ (frame_mac.h).
absl::Status EncodeFrame(const FrameKey& key, const FrameHeader& header,
                         absl::Span<const uint8_t> body, absl::Span<const uint8_t> payload,
                         EncodedFrame* out);

// Checks a complete frame: size bounds, magic, version, lengths, then the MAC with `key` (in
// constant time), then that dst is `self` (or kAnyNode for handshake frames). Parses nothing
// else. Returns the header; on failure *why names the drop counter.
absl::StatusOr<FrameHeader> VerifyFrame(const FrameKey& key, absl::Span<const uint8_t> frame,
                                        NodeId self, DropReason* why);

}  // namespace amalgam::fabric

#endif  // AMALGAM_FABRIC_FRAME_H_
