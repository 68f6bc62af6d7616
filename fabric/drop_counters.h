// DropCounters: why received frames were thrown away, one counter per reason.
// Thread-safety: all methods are thread-safe (relaxed atomics). Owned by each transport.
#ifndef AMALGAM_FABRIC_DROP_COUNTERS_H_
#define AMALGAM_FABRIC_DROP_COUNTERS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace amalgam::fabric {

enum class DropReason : int {
  kTooShort = 0,      // fewer bytes than header + MAC
  kTooLong,           // length fields exceed kMaxFrameSize / kMaxBodySize / kMaxPayloadSize
  kBadMagic,          // not a fabric frame
  kBadVersion,        // another wire version
  kBadLength,         // length fields disagree with the bytes received, or reserved bits set
  kBadMac,            // authentication failed (wrong key, forged or corrupted)
  kReplay,            // sequence number already seen or too old
  kWrongDestination,  // dst is not this node
  kUnknownPeer,       // src is not a configured peer, or src differs from the link's peer
  kBadBody,           // authenticated, but the Cap'n Proto body is malformed
  kTruncated,         // connection closed mid-frame
  kHandshake,         // Hello refused: wrong version, wrong node id, bad nonce
  kLateReply,         // RPC reply with no waiting call (timed out or unknown id)
  kUnhandled,         // RPC request with no handler registered for its type
  kCount
};

inline constexpr int kDropReasonCount = static_cast<int>(DropReason::kCount);

const char* DropReasonName(DropReason reason);

// A copy of the counters at one moment.
struct DropSnapshot {
  std::array<uint64_t, kDropReasonCount> counts{};
  uint64_t Get(DropReason r) const { return counts[static_cast<int>(r)]; }
  uint64_t Total() const;
  std::string ToString() const;  // "bad_mac=3 replay=1" (non-zero ones only)
};

class DropCounters {
 public:
  void Count(DropReason reason, uint64_t n = 1) {
    counts_[static_cast<int>(reason)].fetch_add(n, std::memory_order_relaxed);
  }
  uint64_t Get(DropReason reason) const {
    return counts_[static_cast<int>(reason)].load(std::memory_order_relaxed);
  }
  DropSnapshot Snapshot() const;

 private:
  std::array<std::atomic<uint64_t>, kDropReasonCount> counts_{};
};

}  // namespace amalgam::fabric

#endif  // AMALGAM_FABRIC_DROP_COUNTERS_H_
