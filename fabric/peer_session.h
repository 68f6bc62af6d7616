// The authenticated link state between this node and one peer, and the Hello handshake that
// creates it. Any transport (TCP, DPDK, in-process) uses these so all speak one frame format:
//  1. each side sends a Hello frame (flag kFlagHandshake, seq 0, MAC'd with the cluster key)
//     carrying protocolVersion, its node id and a fresh 32-byte nonce;
//  2. each side checks the peer's Hello (version, expected node id) and derives the session key
//     FrameKey::DeriveSession(nonce of the lower node id, nonce of the higher one);
//  3. every later frame is MAC'd with the session key and carries seq 1, 2, 3... per direction.
// A peer with another cluster key fails step 1 (kBadMac) and never gets a session. A replayed
// Hello does verify, so a transport should not let a new session displace a live one until the
// peer has proved the key with a frame under the new session (TcpTransport: a Heartbeat, seq 1).
#ifndef AMALGAM_FABRIC_PEER_SESSION_H_
#define AMALGAM_FABRIC_PEER_SESSION_H_

#include <array>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "fabric/cluster_key.h"
#include "fabric/frame.h"
#include "fabric/message.h"
#include "fabric/replay_window.h"

namespace amalgam::fabric {

struct HelloInfo {
  NodeId node = 0;
  uint32_t protocol_version = 0;
  std::array<uint8_t, kNonceSize> nonce{};
};

// A complete Hello frame from `self` to `peer` (kAnyNode if not yet known).
std::vector<uint8_t> BuildHelloFrame(const FrameKey& cluster_key, NodeId self, NodeId peer,
                                     const std::array<uint8_t, kNonceSize>& nonce);

// Verifies and parses a Hello frame sent to `self`. Refuses (and sets *why) a bad MAC, a
// protocol version other than schema::PROTOCOL_VERSION (kHandshake, FAILED_PRECONDITION), a node
// id that differs from the header's src, or a nonce of the wrong size.
absl::StatusOr<HelloInfo> ParseHelloFrame(const FrameKey& cluster_key,
                                          absl::Span<const uint8_t> frame, NodeId self,
                                          DropReason* why);

// Per-link state after a handshake. Thread-safety: not thread-safe; the owner serializes Encode
// calls (send side) and Decode calls (receive side) separately; they share no state.
class PeerSession {
 public:
  PeerSession(NodeId self, NodeId peer, const FrameKey& session_key);
  // Both nodes compute the same session from the two Hellos.
  static PeerSession FromHandshake(const FrameKey& cluster_key, NodeId self,
                                   const std::array<uint8_t, kNonceSize>& self_nonce,
                                   const HelloInfo& peer_hello);

  NodeId peer() const { return peer_; }
  // Stamps the next sequence number and the MAC. `frame`'s spans must outlive `out`.
  absl::Status Encode(const OutgoingFrame& frame, EncodedFrame* out);
  // Verifies (MAC, dst, src == peer), rejects replays, then parses. Sets *why on failure.
  absl::StatusOr<ReceivedMessage> Decode(FrameBuffer frame, DropReason* why);

 private:
  NodeId self_;
  NodeId peer_;
  FrameKey key_;
  uint64_t next_tx_seq_ = 1;
  ReplayWindow rx_window_;
};

}  // namespace amalgam::fabric

#endif  // AMALGAM_FABRIC_PEER_SESSION_H_
