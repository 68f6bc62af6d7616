#include "fabric/peer_session.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace amalgam::fabric {

std::vector<uint8_t> BuildHelloFrame(const FrameKey& cluster_key, NodeId self, NodeId peer,
                                     const std::array<uint8_t, kNonceSize>& nonce) {
  capnp::MallocMessageBuilder builder;
  auto hello = builder.initRoot<schema::Message>().initHello();
  hello.setProtocolVersion(schema::PROTOCOL_VERSION);
  hello.setNodeId(self);
  hello.setNonce(capnp::Data::Reader(nonce.data(), nonce.size()));
  FlatMessage flat(builder);
  FrameHeader header;
  header.flags = kFlagHandshake;
  header.type = flat.type();
  header.src = self;
  header.dst = peer;
  header.seq = 0;
  EncodedFrame encoded;
  // Cannot fail: a Hello is far below the size limits.
  (void)EncodeFrame(cluster_key, header, flat.bytes(), {}, &encoded);
  std::vector<uint8_t> out(encoded.size());
  encoded.CopyTo(out.data());
  return out;
}

absl::StatusOr<HelloInfo> ParseHelloFrame(const FrameKey& cluster_key,
                                          absl::Span<const uint8_t> frame, NodeId self,
                                          DropReason* why) {
  auto header = VerifyFrame(cluster_key, frame, self, why);
  if (!header.ok()) return header.status();
  auto refuse = [why](absl::string_view what) {
    if (why != nullptr) *why = DropReason::kHandshake;
    return absl::FailedPreconditionError(absl::StrCat("fabric handshake refused: ", what));
  };
  if ((header->flags & kFlagHandshake) == 0 || header->seq != 0 || header->payload_len != 0 ||
      header->type != static_cast<uint16_t>(schema::Message::HELLO)) {
    return refuse("first frame on a link must be a Hello");
  }
  FrameBuffer buffer = FrameBuffer::Allocate(frame.size());
  std::memcpy(buffer.data(), frame.data(), frame.size());
  auto message = ReceivedMessage::Parse(std::move(buffer), *header);
  if (!message.ok()) {
    if (why != nullptr) *why = DropReason::kBadBody;
    return message.status();
  }
  auto hello = message->message().getHello();
  if (hello.getProtocolVersion() != schema::PROTOCOL_VERSION) {
    return refuse(absl::StrCat("peer speaks protocol version ", hello.getProtocolVersion(),
                               ", this node speaks ", schema::PROTOCOL_VERSION,
                               "; run the same amalgam release on every node"));
  }
  if (hello.getNodeId() != header->src) {
    return refuse(absl::StrCat("Hello node id ", hello.getNodeId(), " differs from frame source ",
                               header->src));
  }
  if (hello.getNonce().size() != kNonceSize) {
    return refuse(absl::StrCat("nonce of ", hello.getNonce().size(), " bytes, want ", kNonceSize));
  }
  HelloInfo info;
  info.node = hello.getNodeId();
  info.protocol_version = hello.getProtocolVersion();
  std::memcpy(info.nonce.data(), hello.getNonce().begin(), kNonceSize);
  return info;
}

PeerSession::PeerSession(NodeId self, NodeId peer, const FrameKey& session_key)
    : self_(self), peer_(peer), key_(session_key) {}

PeerSession PeerSession::FromHandshake(const FrameKey& cluster_key, NodeId self,
                                       const std::array<uint8_t, kNonceSize>& self_nonce,
                                       const HelloInfo& peer_hello) {
  bool self_lower = self < peer_hello.node;
  FrameKey session = self_lower ? cluster_key.DeriveSession(self_nonce, peer_hello.nonce)
                                : cluster_key.DeriveSession(peer_hello.nonce, self_nonce);
  return PeerSession(self, peer_hello.node, session);
}

absl::Status PeerSession::Encode(const OutgoingFrame& frame, EncodedFrame* out) {
  FrameHeader header;
  header.flags = frame.flags & (kFlagRpcRequest | kFlagRpcReply);
  header.type = frame.type;
  header.src = self_;
  header.dst = peer_;
  header.seq = next_tx_seq_;
  header.rpc_id = frame.rpc_id;
  absl::Status s = EncodeFrame(key_, header, frame.body, frame.payload, out);
  if (s.ok()) ++next_tx_seq_;
  return s;
}

absl::StatusOr<ReceivedMessage> PeerSession::Decode(FrameBuffer frame, DropReason* why) {
  auto header = VerifyFrame(key_, frame.span(), self_, why);
  if (!header.ok()) return header.status();
  if (header->src != peer_ || (header->flags & kFlagHandshake) != 0) {
    if (why != nullptr) *why = DropReason::kUnknownPeer;
    return absl::InvalidArgumentError(
        absl::StrCat("fabric frame from node ", header->src, " on the link to node ", peer_));
  }
  if (!rx_window_.Accept(header->seq)) {
    if (why != nullptr) *why = DropReason::kReplay;
    return absl::InvalidArgumentError(absl::StrCat("fabric frame seq ", header->seq,
                                                   " replayed or too old (highest ",
                                                   rx_window_.highest(), ")"));
  }
  auto message = ReceivedMessage::Parse(std::move(frame), *header);
  if (!message.ok() && why != nullptr) *why = DropReason::kBadBody;
  return message;
}

}  // namespace amalgam::fabric
