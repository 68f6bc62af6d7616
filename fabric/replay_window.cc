#include "fabric/replay_window.h"

namespace amalgam::fabric {

bool ReplayWindow::WouldAccept(uint64_t seq) const {
  if (seq == 0) return false;
  if (seq > highest_) return true;
  if (highest_ - seq >= kWindow) return false;  // too old to tell: refuse
  uint64_t bit = seq % kWindow;
  return (bits_[bit / 64] & (uint64_t{1} << (bit % 64))) == 0;
}

bool ReplayWindow::Accept(uint64_t seq) {
  if (!WouldAccept(seq)) return false;
  if (seq > highest_) {
    // Slide: clear the bits of the numbers between the old highest and seq (they are unseen).
    uint64_t advance = seq - highest_;
    if (advance >= kWindow) {
      for (auto& w : bits_) w = 0;
    } else {
      for (uint64_t s = highest_ + 1; s < seq; ++s) {
        uint64_t b = s % kWindow;
        bits_[b / 64] &= ~(uint64_t{1} << (b % 64));
      }
    }
    highest_ = seq;
  }
  uint64_t bit = seq % kWindow;
  bits_[bit / 64] |= uint64_t{1} << (bit % 64);
  return true;
}

}  // namespace amalgam::fabric
