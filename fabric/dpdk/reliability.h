// Reliable, in-order delivery over a link that may lose, duplicate or reorder frames (DPDK).
// Pure logic, no I/O and no clock of its own: callers pass monotonic nanoseconds.
//
// Sequence numbers are the fabric frame's own per-peer `seq` (1, 2, 3, ... per direction, stamped
// by PeerSession), so a retransmission resends the identical authenticated frame.
// The receiver acknowledges with (cumulative, sack): every seq <= cumulative arrived, and bit i of
// `sack` says cumulative + 2 + i arrived too (cumulative + 1 is by definition missing).
#ifndef AMALGAM_FABRIC_DPDK_RELIABILITY_H_
#define AMALGAM_FABRIC_DPDK_RELIABILITY_H_

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <utility>

namespace amalgam::fabric {

struct RetransmitOptions {
  size_t window = 256;                  // unacknowledged frames per peer
  int64_t initial_rto_ns = 20'000'000;  // before any RTT sample
  int64_t min_rto_ns = 2'000'000;       // floor: this machine's scheduler tails are ms-scale
  int64_t max_rto_ns = 200'000'000;     // backoff ceiling
};

// Sender side of one peer link: keeps every unacknowledged packet, retransmits on timeout with
// exponential backoff, and learns the RTO from acks (Karn's rule: no samples from retransmits).
// Thread-safety: not thread-safe. Owns the Packets (released when acked or on Clear()).
template <typename Packet>
class RetransmitQueue {
 public:
  explicit RetransmitQueue(RetransmitOptions options = {})
      : opt_(options), rto_ns_(options.initial_rto_ns) {}

  bool Full() const { return pending_.size() >= opt_.window; }
  size_t in_flight() const { return pending_.size(); }
  int64_t rto_ns() const { return rto_ns_; }
  uint64_t retransmits() const { return retransmits_; }

  // Records a packet that was just sent. Sequence numbers must increase.
  void Add(uint64_t seq, Packet packet, int64_t now_ns) {
    pending_.emplace(seq,
                     Slot{std::move(packet), now_ns, now_ns, now_ns + rto_ns_, rto_ns_, false});
    earliest_ns_ = std::min(earliest_ns_, now_ns + rto_ns_);
  }

  // Applies an acknowledgement; returns how many packets it released. Stale or repeated acks
  // are harmless.
  size_t OnAck(uint64_t cumulative, uint64_t sack, int64_t now_ns) {
    size_t released = 0;
    const bool advanced = cumulative > highest_cumulative_;
    while (!pending_.empty() && pending_.begin()->first <= cumulative) {
      Sample(pending_.begin()->second, now_ns);
      pending_.erase(pending_.begin());
      ++released;
    }
    for (int i = 0; sack != 0 && i < 64; ++i) {
      if (!(sack & (uint64_t{1} << i))) continue;
      auto it = pending_.find(cumulative + 2 + i);
      if (it == pending_.end()) continue;
      Sample(it->second, now_ns);
      pending_.erase(it);
      ++released;
    }
    if (advanced) {
      // The peer is making progress: what is still queued behind a long window is late, not
      // lost. Restart its timers (as TCP does) instead of retransmitting the whole window.
      highest_cumulative_ = cumulative;
      for (auto& [seq, slot] : pending_) {
        slot.deadline_ns = std::max(slot.deadline_ns, now_ns + slot.timeout_ns);
      }
    }
    if (sack != 0) {
      // Later frames arrived but cumulative + 1 did not: resend it now rather than after a full
      // RTO, at most once per 2 smoothed RTTs (the ack repeats until the hole is filled).
      auto hole = pending_.find(cumulative + 1);
      if (hole != pending_.end() &&
          now_ns - hole->second.last_sent_ns > std::max<int64_t>(2 * srtt_ns_, kFastRetransmitNs)) {
        hole->second.deadline_ns = now_ns;
        earliest_ns_ = std::min(earliest_ns_, now_ns);
      }
    }
    return released;
  }

  // Calls resend(seq, packet) for every packet whose timer expired and re-arms it with a doubled
  // timeout. Returns how many were resent.
  // Called on every poll, so it returns at once until the earliest deadline has passed.
  template <typename Fn>
  size_t ResendDue(int64_t now_ns, Fn&& resend) {
    if (now_ns < earliest_ns_) return 0;
    size_t n = 0;
    int64_t earliest = INT64_MAX;
    for (auto& [seq, slot] : pending_) {
      if (slot.deadline_ns <= now_ns) {
        resend(seq, slot.packet);
        slot.retransmitted = true;
        slot.last_sent_ns = now_ns;
        slot.timeout_ns = std::min(slot.timeout_ns * 2, opt_.max_rto_ns);
        slot.deadline_ns = now_ns + slot.timeout_ns;
        ++retransmits_;
        ++n;
      }
      earliest = std::min(earliest, slot.deadline_ns);
    }
    earliest_ns_ = earliest;
    return n;
  }

  // Earliest retransmission deadline, or INT64_MAX when nothing is in flight.
  int64_t NextDeadline() const {
    int64_t d = INT64_MAX;
    for (const auto& [seq, slot] : pending_) d = std::min(d, slot.deadline_ns);
    return d;
  }

  void Clear() {
    pending_.clear();
    earliest_ns_ = INT64_MAX;
    highest_cumulative_ = 0;
  }

 private:
  static constexpr int64_t kFastRetransmitNs = 200'000;
  struct Slot {
    Packet packet;
    int64_t sent_ns;       // first transmission (RTT samples)
    int64_t last_sent_ns;  // latest (re)transmission
    int64_t deadline_ns;
    int64_t timeout_ns;
    bool retransmitted;
  };
  void Sample(const Slot& s, int64_t now_ns) {
    if (s.retransmitted) return;
    int64_t rtt = std::max<int64_t>(0, now_ns - s.sent_ns);
    if (srtt_ns_ == 0) {
      srtt_ns_ = rtt;
      rttvar_ns_ = rtt / 2;
    } else {
      int64_t err = rtt - srtt_ns_;
      srtt_ns_ += err / 8;
      rttvar_ns_ += ((err < 0 ? -err : err) - rttvar_ns_) / 4;
    }
    rto_ns_ = std::clamp(srtt_ns_ + 4 * rttvar_ns_, opt_.min_rto_ns, opt_.max_rto_ns);
  }

  RetransmitOptions opt_;
  std::map<uint64_t, Slot> pending_;
  // <= every pending deadline (acks only remove slots, so it may be early, never late).
  int64_t earliest_ns_ = INT64_MAX;
  uint64_t highest_cumulative_ = 0;
  int64_t rto_ns_;
  int64_t srtt_ns_ = 0;
  int64_t rttvar_ns_ = 0;
  uint64_t retransmits_ = 0;
};

// Receiver side of one peer link: suppresses duplicates, holds early arrivals and releases
// messages strictly in sequence order. Memory is bounded by `window` held messages.
// Thread-safety: not thread-safe. Owns the held Messages.
template <typename Message>
class ReorderBuffer {
 public:
  enum class Verdict { kNew, kDuplicate, kBeyondWindow };

  explicit ReorderBuffer(size_t window = 1024) : window_(window) {}

  // Classifies `seq` without changing state (call before the expensive MAC check).
  Verdict Check(uint64_t seq) const {
    if (seq < next_) return Verdict::kDuplicate;
    if (seq >= next_ + window_) return Verdict::kBeyondWindow;
    if (held_.count(seq)) return Verdict::kDuplicate;
    return Verdict::kNew;
  }

  // Stores a message Check() called kNew; in-order ones become ready at once.
  void Insert(uint64_t seq, Message message) {
    if (Check(seq) != Verdict::kNew) return;
    if (seq != next_) {
      held_.emplace(seq, std::move(message));
      return;
    }
    ready_.push_back(std::move(message));
    ++next_;
    for (auto it = held_.begin(); it != held_.end() && it->first == next_; it = held_.erase(it)) {
      ready_.push_back(std::move(it->second));
      ++next_;
    }
  }

  // Next in-order message, if any.
  std::optional<Message> Pop() {
    if (ready_.empty()) return std::nullopt;
    std::optional<Message> out(std::move(ready_.front()));
    ready_.pop_front();
    return out;
  }
  size_t ready() const { return ready_.size(); }
  size_t held() const { return held_.size(); }

  // Acknowledgement state: everything <= cumulative() arrived; see the file comment for sack().
  uint64_t cumulative() const { return next_ - 1; }
  uint64_t sack() const {
    uint64_t bits = 0;
    for (const auto& [seq, m] : held_) {
      uint64_t d = seq - next_;  // >= 1: next_ itself is missing
      if (d >= 1 && d <= 64) bits |= uint64_t{1} << (d - 1);
    }
    return bits;
  }

  void Reset() {
    next_ = 1;
    held_.clear();
    ready_.clear();
  }

 private:
  size_t window_;
  uint64_t next_ = 1;
  std::map<uint64_t, Message> held_;
  std::deque<Message> ready_;
};

}  // namespace amalgam::fabric

#endif  // AMALGAM_FABRIC_DPDK_RELIABILITY_H_
