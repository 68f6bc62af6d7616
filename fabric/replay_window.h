// ReplayWindow: accepts each sequence number at most once. Sequence numbers start at 1 and the
// window remembers the last kWindow numbers below the highest seen, so a datagram transport may
// reorder within the window; anything older is refused as a possible replay.
// Thread-safety: not thread-safe; one per (peer, direction), owned by the receiving side.
#ifndef AMALGAM_FABRIC_REPLAY_WINDOW_H_
#define AMALGAM_FABRIC_REPLAY_WINDOW_H_

#include <cstdint>

namespace amalgam::fabric {

class ReplayWindow {
 public:
  static constexpr uint64_t kWindow = 1024;

  // True if `seq` is new (and records it); false for 0, a repeat, or older than the window.
  bool Accept(uint64_t seq);
  // Same test without recording.
  bool WouldAccept(uint64_t seq) const;
  uint64_t highest() const { return highest_; }

 private:
  static constexpr int kWords = kWindow / 64;
  uint64_t highest_ = 0;
  uint64_t bits_[kWords] = {};  // bit (seq % kWindow) set: seq seen (for seq in the window)
};

}  // namespace amalgam::fabric

#endif  // AMALGAM_FABRIC_REPLAY_WINDOW_H_
