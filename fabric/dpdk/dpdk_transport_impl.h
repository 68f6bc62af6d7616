// Internal to fabric/dpdk: the state behind DpdkTransport, shared by its Tx/lifecycle part
// (dpdk_transport.cc) and its Rx part (dpdk_transport_rx.cc). Not a public header.
// Thread-safety: every member function takes mu_ (or requires it); see dpdk_transport.h.
#ifndef AMALGAM_FABRIC_DPDK_DPDK_TRANSPORT_IMPL_H_
#define AMALGAM_FABRIC_DPDK_DPDK_TRANSPORT_IMPL_H_

#include <rte_mbuf.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <optional>
#include <random>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "fabric/dpdk/dpdk_transport.h"
#include "fabric/dpdk/link_frames.h"
#include "fabric/peer_session.h"

namespace amalgam::fabric {

inline constexpr Mac kBroadcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
inline constexpr uint16_t kBurst = 32;
// mbufs SendFrame leaves for the PMD's Rx refill and for acks/Hellos.
inline constexpr size_t kMbufReserve = 512;
// Hellos with unproven new nonces kept per peer (a replay flood evicts only other candidates).
inline constexpr size_t kMaxHelloCandidates = 4;

class DpdkTransport::Impl {
 public:
  // ports[0] is the shared port (if any); AddPeer names each peer's port by index.
  Impl(DpdkTransportOptions o, std::vector<std::unique_ptr<DpdkPort>> ports)
      : opt_(std::move(o)),
        ports_(std::move(ports)),
        reassembler_(opt_.reassembly),
        drop_rng_(opt_.test_rx_drop_seed) {
    RandomBytes(absl::MakeSpan(nonce_));
    max_chunk_ = opt_.mtu - kFrameHeaderSize;
    for (const auto& port : ports_) {
      port_macs_.push_back(port->mac());
      link_up_.push_back(true);  // Create waited for link up
    }
  }

  absl::Status AddPeer(NodeId id, const std::string& mac, size_t port) {
    Peer p(opt_.retransmit);
    p.port = port;
    if (!mac.empty()) {
      auto m = ParseMac(mac);
      if (!m.ok()) return m.status();
      p.mac = *m;
      p.mac_pinned = true;
    }
    absl::MutexLock l(&mu_);
    peers_.emplace(id, std::move(p));
    return absl::OkStatus();
  }

  void StartPoller() {
    poller_ = std::thread([this] { PollerLoop(); });
  }

  ~Impl() { Close(); }

  void Close() {
    if (closing_.exchange(true)) {
      if (poller_.joinable()) poller_.join();
      return;
    }
    if (poller_.joinable()) poller_.join();
    absl::MutexLock l(&mu_);
    closed_ = true;
    for (auto& [id, p] : peers_) {
      for (int i = 0; i < 3; ++i) SendLinkFrame(id, p, kFlagLinkBye);  // tell them to stop first
    }
    // Give them time to stop transmitting before our ports disconnect.
    if (!peers_.empty()) usleep(20'000);
    for (auto& [id, p] : peers_) p.tx.Clear();  // mbuf references go back before the pool dies
    ready_.clear();
    // Every port disconnects before any is detached, and DPDK's interrupt thread gets a moment
    // to finish the disconnects it is handling: with several memif ports in one process,
    // detaching one while that thread still worked on another's disconnect crashed it (DPDK
    // 22.11, seen under ASan with 3 processes tearing down at once).
    for (auto& port : ports_) port->Stop();
    if (ports_.size() > 1) usleep(20'000);
    ports_.clear();
  }

  NodeId self() const { return opt_.self; }
  Mac mac() const { return port_macs_.empty() ? Mac{} : port_macs_[0]; }

  absl::Status WaitForPeer(NodeId id, absl::Duration timeout) {
    absl::Time deadline = absl::Now() + timeout;
    IdleWaiter idle(opt_.idle);
    while (true) {
      {
        absl::MutexLock l(&mu_);
        if (closed_) return absl::CancelledError("DpdkTransport closed");
        auto it = peers_.find(id);
        if (it == peers_.end()) {
          return absl::NotFoundError(absl::StrCat("node ", id, " is not a configured peer"));
        }
        if (it->second.confirmed) return absl::OkStatus();
        if (active_receivers_ == 0) PollOnce();
      }
      if (absl::Now() > deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat("no handshake with node ", id, " within ", absl::FormatDuration(timeout),
                         " (is it running with the same cluster key on the same link?)"));
      }
      idle.Idle();
    }
  }

  absl::Status Flush(absl::Duration timeout) {
    absl::Time deadline = absl::Now() + timeout;
    IdleWaiter idle(opt_.idle);
    absl::MutexLock l(&mu_);
    while (true) {
      if (closed_) return absl::CancelledError("DpdkTransport closed");
      size_t in_flight = 0;
      for (const auto& [id, p] : peers_) in_flight += p.tx.in_flight();
      if (in_flight == 0) return absl::OkStatus();
      if (PollOnce() > 0) continue;
      if (absl::Now() > deadline) {
        return absl::DeadlineExceededError(absl::StrCat(
            in_flight, " frames still unacknowledged after ", absl::FormatDuration(timeout)));
      }
      mu_.Unlock();
      idle.Idle();
      mu_.Lock();
    }
  }

  absl::Status SendFrame(NodeId dst, const OutgoingFrame& frame) {
    absl::Time deadline = absl::Now() + opt_.send_timeout;
    IdleWaiter idle(opt_.idle);
    absl::MutexLock l(&mu_);
    while (true) {
      if (closed_ || closing_) return absl::CancelledError("DpdkTransport closed");
      auto it = peers_.find(dst);
      if (it == peers_.end()) {
        return absl::NotFoundError(absl::StrCat("node ", dst, " is not a configured peer"));
      }
      Peer& p = it->second;
      if (!p.session) {
        return absl::UnavailableError(absl::StrCat(
            "no link to node ", dst, " yet (handshake pending); retry or WaitForPeer first"));
      }
      if (p.left) {
        return absl::UnavailableError(
            absl::StrCat("node ", dst, " closed its DPDK link (it is shutting down)"));
      }
      if (!link_up_[p.port]) {
        return absl::UnavailableError(
            absl::StrCat("no carrier on the DPDK port to node ", dst, "; is that node running?"));
      }
      // Room in the window and mbufs for every fragment, checked before PeerSession stamps a
      // sequence number: a seq that never leaves would stall the peer's in-order delivery.
      if (!p.tx.Full() && MbufsAvailable(p, frame)) return SendData(dst, p, frame);
      PollOnce();  // acks free the window and the mbufs held for retransmission
      if (!p.tx.Full() && MbufsAvailable(p, frame)) continue;
      if (absl::Now() > deadline) {
        return absl::UnavailableError(absl::StrCat(
            "node ", dst, " acknowledged nothing for ", absl::FormatDuration(opt_.send_timeout),
            p.tx.Full() ? " (send window full)" : " (mbuf pool exhausted)"));
      }
      mu_.Unlock();
      idle.Idle();
      mu_.Lock();
    }
  }

  absl::StatusOr<ReceivedMessage> Receive(absl::Duration timeout) {
    absl::Time deadline = absl::Now() + timeout;
    IdleWaiter idle(opt_.idle);
    absl::MutexLock l(&mu_);
    ++active_receivers_;
    while (true) {
      if (!ready_.empty()) {
        ReceivedMessage m = std::move(ready_.front());
        ready_.pop_front();
        ++stats_.frames_received;
        stats_.bytes_received += m.header().body_len + m.header().payload_len;
        --active_receivers_;
        return m;
      }
      if (closed_ || closing_) {
        --active_receivers_;
        return absl::CancelledError("DpdkTransport closed");
      }
      if (PollOnce() > 0) {
        idle.Worked();
        continue;
      }
      if (absl::Now() > deadline) {
        --active_receivers_;
        return absl::DeadlineExceededError("no fabric message within the timeout");
      }
      mu_.Unlock();
      idle.Idle();
      mu_.Lock();
    }
  }

  TransportStats GetStats() const {
    absl::MutexLock l(&mu_);
    TransportStats s = stats_;
    s.drops = drops_.Snapshot();
    return s;
  }

  DpdkLinkStats GetLinkStats() const {
    absl::MutexLock l(&mu_);
    DpdkLinkStats s = link_;
    s.reassembly = reassembler_.counters();
    for (const auto& [id, p] : peers_) s.retransmits += p.tx.retransmits();
    return s;
  }

 private:
  // A Hello with a new nonce on a live link, not yet proven by a frame under its session.
  struct HelloCandidate {
    HelloInfo hello;
    Mac mac;
    FrameKey key;  // the session key it would give
  };
  struct Peer {
    explicit Peer(const RetransmitOptions& ro) : tx(ro), rx(ReplayWindow::kWindow) {}
    Mac mac = kBroadcast;
    bool mac_pinned = false;
    size_t port = 0;                     // index into ports_: the only port this peer's frames use
    std::optional<PeerSession> session;  // after the peer's Hello
    std::optional<FrameKey> ack_key;     // the same session key, for link acks
    std::array<uint8_t, kNonceSize> peer_nonce{};
    std::vector<HelloCandidate> candidates;  // see HandleHello
    // Sent kFlagLinkBye: we stop transmitting to it (acks, retransmits, Hellos) until a Hello
    // of its next incarnation.
    bool left = false;
    bool confirmed = false;  // authenticated traffic seen under the session
    RetransmitQueue<HeldFrames> tx;
    ReorderBuffer<ReceivedMessage> rx;
    int64_t next_hello_ns = 0;
    size_t unacked = 0;  // frames received since our last ack
    int64_t first_unacked_ns = 0;
    bool ack_now = false;  // a duplicate arrived: our ack was probably lost
  };

  // One poll: a receive burst, then timers (acks, retransmits, hellos, reassembly expiry).
  // Returns the number of link frames processed.
  int PollOnce() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (ports_.empty()) return 0;
    rte_mbuf* pkts[kBurst];
    int total = 0;
    int64_t now = 0;
    for (size_t port = 0; port < ports_.size(); ++port) {
      uint16_t n = ports_[port]->RxBurst(pkts, kBurst);
      if (n == 0) continue;
      if (now == 0) now = MonotonicNs();
      for (uint16_t i = 0; i < n; ++i) {
        HandleLinkFrame(pkts[i], port, now);
        rte_pktmbuf_free(pkts[i]);
      }
      total += n;
    }
    // Timers run after work and on every 8th empty poll: their deadlines are >= 50 us away, and
    // reading the clock on every empty poll was the top entry of the spin loop's profile.
    if (total == 0 && (++empty_polls_ & 7) != 0) return 0;
    if (now == 0) now = MonotonicNs();
    Timers(now);
    return total;
  }

  void Timers(int64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (auto& [id, p] : peers_) {
      if (p.left) continue;  // it said goodbye: nothing goes to it until its next Hello
      if (!p.confirmed && now >= p.next_hello_ns) {
        SendHello(id, p);
        if (p.session) SendAck(id, p);  // lets the peer confirm us once it has our Hello
        p.next_hello_ns = now + absl::ToInt64Nanoseconds(opt_.hello_interval);
      }
      if (p.unacked > 0 && (p.ack_now || p.unacked >= opt_.ack_every ||
                            now - p.first_unacked_ns >= opt_.ack_delay_ns)) {
        SendAck(id, p);
      }
      if (p.tx.in_flight() > 0) {
        const size_t port = p.port;  // C++17 lambdas cannot capture structured bindings
        // The lambda runs inside this locked call; the analysis cannot see through it.
        p.tx.ResendDue(now, [&](uint64_t, HeldFrames& held) ABSL_NO_THREAD_SAFETY_ANALYSIS {
          for (rte_mbuf* m : held.mbufs()) {
            RetainChain(m);
            Transmit(port, m);
          }
        });
      }
    }
    if (now - last_expire_ns_ > 1'000'000) {
      reassembler_.Expire(now);
      last_expire_ns_ = now;
      // Carrier state for SendFrame (memif: the peer process closed its socket or died).
      for (size_t i = 0; i < ports_.size(); ++i) link_up_[i] = ports_[i]->LinkUp();
    }
  }

  // Hands one chain to the PMD (retrying briefly); frees it if the ring stays full.
  void Transmit(size_t port, rte_mbuf* m) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    // A full Tx ring usually drains within microseconds (memif: the peer is copying out); a
    // frame given up here costs a retransmission timeout, so wait up to ~200 us for room.
    int64_t start = 0;
    for (int spins = 0;; ++spins) {
      if (ports_[port]->TxBurst(&m, 1) == 1) {
        ++link_.link_frames_sent;
        return;
      }
      if (spins < 64) continue;
      int64_t now = MonotonicNs();
      if (start == 0) start = now;
      if (now - start > 200'000) break;
      sched_yield();
    }
    ++link_.tx_ring_full;
    rte_pktmbuf_free(m);
  }

  void SendRaw(size_t port, const Mac& dst, absl::Span<const uint8_t> frame)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    FrameTail tail;
    tail.parts[0] = frame.subspan(kFrameHeaderSize);
    rte_mbuf* m = BuildLinkFrame(ports_[port]->pool(), dst, port_macs_[port], kFabricEtherType,
                                 frame.data(), tail, 0, tail.size());
    if (m != nullptr) Transmit(port, m);
  }

  void SendHello(NodeId id, Peer& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (p.left) return;
    std::vector<uint8_t> hello = BuildHelloFrame(opt_.cluster_key, opt_.self, id, nonce_);
    SendRaw(p.port, p.mac, hello);
    ++link_.hellos_sent;
  }

  void SendAck(NodeId id, Peer& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    SendLinkFrame(id, p, kFlagLinkAck);
  }

  // A bodiless link frame under the session key: an ack (cumulative + SACK) or a goodbye.
  void SendLinkFrame(NodeId id, Peer& p, uint8_t flag) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!p.ack_key || p.left) return;
    FrameHeader h;
    h.flags = flag;
    h.src = opt_.self;
    h.dst = id;
    h.seq = p.rx.cumulative();
    h.rpc_id = p.rx.sack();
    EncodedFrame enc;
    if (!EncodeFrame(*p.ack_key, h, {}, {}, &enc).ok()) return;
    rte_mbuf* m = BuildLinkFrame(ports_[p.port]->pool(), p.mac, port_macs_[p.port],
                                 kFabricEtherType, enc.header, TailOf(enc), 0, kFrameMacSize);
    if (m != nullptr) Transmit(p.port, m);
    ++link_.acks_sent;
    p.unacked = 0;
    p.ack_now = false;
  }

  // True if the pool can hold this frame's link frames with room to spare for Rx and acks.
  bool MbufsAvailable(const Peer& p, const OutgoingFrame& frame)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    size_t bytes = FrameSize(frame.body.size(), frame.payload.size());
    size_t frags = bytes / max_chunk_ + 1;
    size_t per_mbuf = opt_.port.mbuf_data_room;
    size_t need = (bytes + frags * (kEthHeaderSize + kFrameHeaderSize)) / per_mbuf + frags + 1;
    return rte_mempool_avail_count(ports_[p.port]->pool()) >= need + kMbufReserve;
  }

  absl::Status SendData(NodeId dst, Peer& p, const OutgoingFrame& frame)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    EncodedFrame enc;
    absl::Status s = p.session->Encode(frame, &enc);
    if (!s.ok()) return s;
    auto plan = PlanFragments(enc.size(), max_chunk_);
    if (!plan.ok()) return plan.status();
    FrameHeader h = ReadFrameHeader(enc.header);
    FrameTail tail = TailOf(enc);
    HeldFrames held;
    for (uint16_t i = 0; i < plan->count; ++i) {
      size_t off = 0, len = 0;
      FragmentExtent(enc.size(), plan->count, i, &off, &len);
      uint8_t hdr[kFrameHeaderSize];
      std::memcpy(hdr, enc.header, kFrameHeaderSize);
      if (plan->count > 1) {
        FrameHeader fh = h;
        fh.frag_index = i;
        fh.frag_count = plan->count;
        WriteFrameHeader(fh, hdr);
      }
      rte_mbuf* m = BuildLinkFrame(ports_[p.port]->pool(), p.mac, port_macs_[p.port],
                                   kFabricEtherType, hdr, tail, off, len);
      if (m == nullptr) {
        // The session already used this seq; the receiver would wait for it forever. Keep the
        // frames we have: retransmission cannot rebuild the rest, so fail loudly instead.
        return absl::ResourceExhaustedError(
            "DPDK mbuf pool exhausted; raise DpdkPortOptions.mbufs (link to this peer is now "
            "stalled until it re-handshakes)");
      }
      held.Add(m);
    }
    for (rte_mbuf* m : held.mbufs()) {
      RetainChain(m);
      Transmit(p.port, m);
    }
    p.tx.Add(h.seq, std::move(held), MonotonicNs());
    ++stats_.frames_sent;
    stats_.bytes_sent += frame.body.size() + frame.payload.size();
    return absl::OkStatus();
  }

  // `port`: index of the port the link frame arrived on. A peer's frames count only on its port.
  void HandleLinkFrame(rte_mbuf* m, size_t port, int64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleFrame(FrameBuffer buf, const FrameHeader& h, const Mac& src_mac, size_t port,
                   int64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleHello(FrameBuffer buf, const Mac& src_mac, size_t port, int64_t now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Replaces the peer's session by the one from `hello` (the peer restarted).
  void Rekey(NodeId id, Peer& p, const HelloInfo& hello, const Mac& src_mac, int64_t now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // If `frame` verifies under a held Hello's session (and not under the live one), re-keys.
  void PromoteIfProven(NodeId id, Peer& p, absl::Span<const uint8_t> frame, int64_t now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  FrameKey SessionKeyWith(const HelloInfo& hello) const;
  // Duplicate / window check of a data frame's seq before any work; false = drop it.
  bool AdmitData(Peer& p, uint64_t seq, int64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void PollerLoop() {
    IdleWaiter idle(opt_.idle);
    while (!closing_) {
      int n = 0;
      bool driven = false;
      {
        absl::MutexLock l(&mu_);
        driven = active_receivers_ > 0;
        if (!driven) n = PollOnce();
      }
      if (driven) {  // a Receive() caller polls; stay out of its way
        usleep(1000);
        idle.Worked();
      } else if (n > 0) {
        idle.Worked();
      } else {
        idle.Idle();
      }
    }
  }

  const DpdkTransportOptions opt_;
  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<DpdkPort>> ports_ ABSL_GUARDED_BY(mu_);
  std::vector<Mac> port_macs_;                      // immutable after construction
  std::vector<bool> link_up_ ABSL_GUARDED_BY(mu_);  // refreshed by Timers about every ms
  std::array<uint8_t, kNonceSize> nonce_{};
  size_t max_chunk_ = 0;
  std::map<NodeId, Peer> peers_ ABSL_GUARDED_BY(mu_);
  Reassembler reassembler_ ABSL_GUARDED_BY(mu_);
  std::deque<ReceivedMessage> ready_ ABSL_GUARDED_BY(mu_);
  int active_receivers_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> closing_{false};
  int64_t last_expire_ns_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t empty_polls_ ABSL_GUARDED_BY(mu_) = 0;
  TransportStats stats_ ABSL_GUARDED_BY(mu_);
  DpdkLinkStats link_ ABSL_GUARDED_BY(mu_);
  DropCounters drops_;
  std::mt19937 drop_rng_ ABSL_GUARDED_BY(mu_);
  std::vector<uint8_t> scratch_ ABSL_GUARDED_BY(mu_);  // one fragment's chunk
  std::thread poller_;
};

}  // namespace amalgam::fabric

#endif  // AMALGAM_FABRIC_DPDK_DPDK_TRANSPORT_IMPL_H_
