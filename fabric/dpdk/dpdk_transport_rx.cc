// DpdkTransport's receive path: link frame -> (reassembly) -> Hello / ack / data -> in order.
// Nothing a peer sends is interpreted before its MAC is checked, except the fixed header fields
// needed to find the peer, the reassembly slot and duplicates (all bounds-checked).
#include <algorithm>

#include "fabric/dpdk/dpdk_transport_impl.h"

namespace amalgam::fabric {

void DpdkTransport::Impl::HandleLinkFrame(rte_mbuf* m, size_t port, int64_t now) {
  ++link_.link_frames_received;
  const uint32_t len = PacketLength(m);
  uint8_t eth[kEthHeaderSize];
  if (!ReadBytes(m, 0, kEthHeaderSize, eth)) {
    drops_.Count(DropReason::kTooShort);
    return;
  }
  if (((eth[12] << 8) | eth[13]) != kFabricEtherType) {
    ++link_.other_ethertype;
    return;
  }
  if (opt_.test_rx_drop_rate > 0 &&
      std::uniform_real_distribution<double>(0, 1)(drop_rng_) < opt_.test_rx_drop_rate) {
    ++link_.test_rx_dropped;
    return;
  }
  Mac dst, src;
  std::memcpy(dst.data(), eth, 6);
  std::memcpy(src.data(), eth + 6, 6);
  if (dst != port_macs_[port] && dst != kBroadcast) {
    ++link_.not_for_us;
    drops_.Count(DropReason::kWrongDestination);
    return;
  }
  uint8_t hb[kFrameHeaderSize];
  if (!ReadBytes(m, kEthHeaderSize, kFrameHeaderSize, hb)) {
    drops_.Count(DropReason::kTooShort);
    return;
  }
  DropReason why = DropReason::kBadLength;
  auto size = PeekFrameSize(absl::MakeConstSpan(hb, kFrameHeaderSize), &why);
  if (!size.ok()) {
    drops_.Count(why);
    return;
  }
  const FrameHeader h = ReadFrameHeader(hb);
  const size_t rest = len - kEthHeaderSize - kFrameHeaderSize;
  if (h.frag_count == 1) {
    if (rest != *size - kFrameHeaderSize) {
      drops_.Count(DropReason::kBadLength);
      return;
    }
    FrameBuffer buf = FrameBuffer::Allocate(*size);
    std::memcpy(buf.data(), hb, kFrameHeaderSize);
    ReadBytes(m, kEthHeaderSize + kFrameHeaderSize, rest, buf.data() + kFrameHeaderSize);
    HandleFrame(std::move(buf), h, src, port, now);
    return;
  }
  // A fragment: only data frames are ever fragmented, and only to us from a known peer.
  if (h.dst != opt_.self) {
    drops_.Count(DropReason::kWrongDestination);
    return;
  }
  auto it = peers_.find(h.src);
  if (it == peers_.end() || it->second.port != port) {
    drops_.Count(DropReason::kUnknownPeer);
    return;
  }
  Peer& p = it->second;
  if (!p.session) {
    ++link_.no_session;
    return;
  }
  if (h.flags & (kFlagHandshake | kFlagLinkAck)) {
    drops_.Count(DropReason::kBadLength);
    return;
  }
  if (!AdmitData(p, h.seq, now)) return;
  if (rest > opt_.mtu) {  // never more than a planned chunk; bounds the scratch copy
    drops_.Count(DropReason::kTooLong);
    return;
  }
  scratch_.resize(rest);
  ReadBytes(m, kEthHeaderSize + kFrameHeaderSize, rest, scratch_.data());
  const ReassemblyCounters before = reassembler_.counters();
  FrameBuffer whole;
  switch (reassembler_.Add(h, scratch_, now, &whole)) {
    case Reassembler::Outcome::kIncomplete:
      return;
    case Reassembler::Outcome::kDropped: {
      // A repeated fragment is normal after a retransmission and a full table is load (both
      // only in the link stats); a fragment that contradicts its frame is a bad frame.
      const ReassemblyCounters& after = reassembler_.counters();
      if (after.bad_geometry != before.bad_geometry ||
          after.inconsistent_fragments != before.inconsistent_fragments) {
        drops_.Count(DropReason::kBadLength);
      }
      return;
    }
    case Reassembler::Outcome::kComplete: {
      const FrameHeader whole_header = ReadFrameHeader(whole.data());  // before the move
      HandleFrame(std::move(whole), whole_header, src, port, now);
      return;
    }
  }
}

bool DpdkTransport::Impl::AdmitData(Peer& p, uint64_t seq, int64_t now) {
  switch (p.rx.Check(seq)) {
    case ReorderBuffer<ReceivedMessage>::Verdict::kNew:
      return true;
    case ReorderBuffer<ReceivedMessage>::Verdict::kDuplicate:
      // The sender retransmitted: our ack was lost or late. Answer soon.
      ++link_.duplicates;
      if (p.unacked++ == 0) p.first_unacked_ns = now;
      p.ack_now = true;
      return false;
    case ReorderBuffer<ReceivedMessage>::Verdict::kBeyondWindow:
      ++link_.beyond_window;
      drops_.Count(DropReason::kReplay);
      return false;
  }
  return false;
}

void DpdkTransport::Impl::HandleFrame(FrameBuffer buf, const FrameHeader& h, const Mac& src_mac,
                                      size_t port, int64_t now) {
  if (h.flags & kFlagHandshake) {
    HandleHello(std::move(buf), src_mac, port, now);
    return;
  }
  auto it = peers_.find(h.src);
  if (it == peers_.end() || it->second.port != port) {
    drops_.Count(DropReason::kUnknownPeer);
    return;
  }
  Peer& p = it->second;
  if (!p.session) {
    ++link_.no_session;
    return;
  }
  if (!p.candidates.empty()) PromoteIfProven(h.src, p, buf.span(), now);
  DropReason why = DropReason::kBadMac;
  if (h.flags & kFlagLinkBye) {
    auto v = VerifyFrame(*p.ack_key, buf.span(), opt_.self, &why);
    if (!v.ok()) {
      drops_.Count(why);
      return;
    }
    if (!p.left) ++link_.byes_received;
    p.left = true;
    p.tx.Clear();  // nothing is retransmitted into a link that is going away
    return;
  }
  if (h.flags & kFlagLinkAck) {
    auto v = VerifyFrame(*p.ack_key, buf.span(), opt_.self, &why);
    if (!v.ok()) {
      drops_.Count(why);
      return;
    }
    if (v->body_len != 0 || v->payload_len != 0) {
      drops_.Count(DropReason::kBadLength);
      return;
    }
    ++link_.acks_received;
    p.tx.OnAck(v->seq, v->rpc_id, now);
    p.confirmed = true;
    return;
  }
  if (!AdmitData(p, h.seq, now)) return;
  auto msg = p.session->Decode(std::move(buf), &why);
  if (!msg.ok()) {
    drops_.Count(why);
    return;
  }
  p.confirmed = true;
  p.rx.Insert(h.seq, std::move(*msg));
  while (auto r = p.rx.Pop()) ready_.push_back(std::move(*r));
  if (p.unacked++ == 0) p.first_unacked_ns = now;
}

void DpdkTransport::Impl::HandleHello(FrameBuffer buf, const Mac& src_mac, size_t port,
                                      int64_t now) {
  DropReason why = DropReason::kHandshake;
  auto hello = ParseHelloFrame(opt_.cluster_key, buf.span(), opt_.self, &why);
  if (!hello.ok()) {
    drops_.Count(why);
    return;
  }
  auto it = peers_.find(hello->node);
  if (it == peers_.end() || it->second.port != port) {
    drops_.Count(DropReason::kUnknownPeer);
    return;
  }
  Peer& p = it->second;
  if (p.session && p.peer_nonce == hello->nonce) {
    // The peer repeats its Hello because it has not heard from us under the session yet.
    if (!p.mac_pinned) p.mac = src_mac;
    SendAck(hello->node, p);
    return;
  }
  if (p.session && p.confirmed && !p.left) {
    // A live link and a Hello with another nonce: either the peer restarted, or someone replays
    // a Hello of an earlier incarnation (its MAC is valid forever). Keep the live session until
    // a frame verifies under the new one (PromoteIfProven); answer with our Hello so a really
    // restarted peer can derive that session and prove it (its acks are MAC'd with it).
    ++link_.held_hellos;
    auto same =
        std::find_if(p.candidates.begin(), p.candidates.end(),
                     [&](const HelloCandidate& c) { return c.hello.nonce == hello->nonce; });
    if (same == p.candidates.end()) {
      if (p.candidates.size() >= kMaxHelloCandidates) p.candidates.erase(p.candidates.begin());
      p.candidates.push_back(HelloCandidate{*hello, src_mac, SessionKeyWith(*hello)});
    }
    std::vector<uint8_t> ours = BuildHelloFrame(opt_.cluster_key, opt_.self, hello->node, nonce_);
    SendRaw(p.port, p.mac_pinned ? p.mac : src_mac, ours);
    ++link_.hellos_sent;
    return;
  }
  Rekey(hello->node, p, *hello, src_mac, now);
}

FrameKey DpdkTransport::Impl::SessionKeyWith(const HelloInfo& hello) const {
  return opt_.self < hello.node ? opt_.cluster_key.DeriveSession(nonce_, hello.nonce)
                                : opt_.cluster_key.DeriveSession(hello.nonce, nonce_);
}

void DpdkTransport::Impl::PromoteIfProven(NodeId id, Peer& p, absl::Span<const uint8_t> frame,
                                          int64_t now) {
  DropReason why;
  if (VerifyFrame(*p.ack_key, frame, opt_.self, &why).ok()) {
    p.candidates.clear();  // the live session still works: the held Hellos were replays
    return;
  }
  for (const HelloCandidate& c : p.candidates) {
    if (VerifyFrame(c.key, frame, opt_.self, &why).ok()) {
      HelloCandidate proven = c;
      Rekey(id, p, proven.hello, proven.mac, now);
      return;
    }
  }
}

void DpdkTransport::Impl::Rekey(NodeId id, Peer& p, const HelloInfo& hello, const Mac& src_mac,
                                int64_t now) {
  if (!p.mac_pinned) p.mac = src_mac;
  if (p.session) ++stats_.disconnects;  // the peer restarted: its old session is gone
  p.session = PeerSession::FromHandshake(opt_.cluster_key, opt_.self, nonce_, hello);
  p.ack_key = SessionKeyWith(hello);
  p.peer_nonce = hello.nonce;
  p.candidates.clear();
  p.left = false;
  p.tx.Clear();
  p.rx.Reset();
  p.unacked = 0;
  p.ack_now = false;
  p.confirmed = false;
  reassembler_.DropSource(id);
  ++stats_.connects;
  SendHello(id, p);
  SendAck(id, p);
  p.next_hello_ns = now + absl::ToInt64Nanoseconds(opt_.hello_interval);
}

}  // namespace amalgam::fabric
