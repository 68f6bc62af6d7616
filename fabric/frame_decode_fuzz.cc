// libFuzzer target for the receive path. Mode 0: the input is a frame as it comes off the wire
// (PeekFrameSize, VerifyFrame, PeerSession::Decode, ParseHelloFrame). Mode 1: the input becomes
// the body and payload of a correctly authenticated frame, so the Cap'n Proto validation behind
// the MAC is fuzzed too. Nothing may crash, leak or read out of bounds.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "fabric/frame.h"
#include "fabric/message.h"
#include "fabric/peer_session.h"

namespace amalgam::fabric {
namespace {

const FrameKey& Key() {
  static const FrameKey key = FrameKey::FromBytes({7, 7, 7});
  return key;
}

void Walk(const ReceivedMessage& m) {
  // Typed reads of every pointer of a validated message (what the layers above do) must not
  // throw: an escaping kj::Exception aborts the fuzzer.
  auto root = m.message();
  switch (root.which()) {
    case schema::Message::HELLO:
      (void)root.getHello().getNonce().size();
      (void)root.getHello().getClusterName().size();
      break;
    case schema::Message::JOIN:
      (void)root.getJoin().getCpuTemplate().size();
      break;
    case schema::Message::JOIN_REPLY:
      (void)root.getJoinReply().getReason().size();
      for (auto member : root.getJoinReply().getMembers()) (void)member.getAddress().size();
      break;
    case schema::Message::LEAVE:
      (void)root.getLeave().getReason().size();
      break;
    case schema::Message::PAGE_GRANT:
      (void)root.getPageGrant().getPage();
      break;
    case schema::Message::PAGE_NACK:
      (void)root.getPageNack().getReason().size();
      break;
    case schema::Message::VCPU_MIGRATE:
      (void)root.getVcpuMigrate().getState().size();
      (void)root.getVcpuMigrate().getReason().size();
      break;
    case schema::Message::VCPU_MIGRATE_ACK:
      (void)root.getVcpuMigrateAck().getReason().size();
      break;
    case schema::Message::DEVICE_REQUEST:
      (void)root.getDeviceRequest().getData().size();
      break;
    case schema::Message::DEVICE_REPLY:
      (void)root.getDeviceReply().getData().size();
      (void)root.getDeviceReply().getError().size();
      break;
    case schema::Message::RPC_ERROR:
      (void)root.getRpcError().getMessage().size();
      break;
    default:
      break;
  }
  (void)m.page().size();
}

void FuzzWire(const uint8_t* data, size_t size) {
  absl::Span<const uint8_t> in(data, size);
  DropReason why;
  (void)PeekFrameSize(in, &why);
  (void)ParseHelloFrame(Key(), in, 2, &why);
  PeerSession session(2, 1, Key());
  FrameBuffer buffer = FrameBuffer::Allocate(size);
  if (size > 0) std::memcpy(buffer.data(), data, size);
  auto m = session.Decode(std::move(buffer), &why);
  if (m.ok()) Walk(*m);
}

void FuzzBody(const uint8_t* data, size_t size) {
  if (size < 3) return;
  uint16_t type = data[0] % 24;
  size_t payload_len = data[1] % 2 ? 0 : std::min<size_t>(size / 2, kMaxPayloadSize);
  data += 2;
  size -= 2;
  size_t body_len =
      std::min<size_t>((size - std::min(size, payload_len)) & ~size_t{7}, kMaxBodySize);
  FrameHeader h;
  h.src = 1;
  h.dst = 2;
  h.seq = 1;
  h.type = type;
  EncodedFrame e;
  if (!EncodeFrame(
           Key(), h, absl::Span<const uint8_t>(data, body_len),
           absl::Span<const uint8_t>(data + body_len, std::min(payload_len, size - body_len)), &e)
           .ok()) {
    return;
  }
  FrameBuffer buffer = FrameBuffer::Allocate(e.size());
  e.CopyTo(buffer.data());
  PeerSession session(2, 1, Key());
  DropReason why;
  auto m = session.Decode(std::move(buffer), &why);
  if (m.ok()) Walk(*m);
}

}  // namespace
}  // namespace amalgam::fabric

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  if (data[0] & 1) {
    amalgam::fabric::FuzzBody(data + 1, size - 1);
  } else {
    amalgam::fabric::FuzzWire(data + 1, size - 1);
  }
  return 0;
}
