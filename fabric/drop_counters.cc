#include "fabric/drop_counters.h"

#include "absl/strings/str_cat.h"

namespace amalgam::fabric {

const char* DropReasonName(DropReason reason) {
  switch (reason) {
    case DropReason::kTooShort:
      return "too_short";
    case DropReason::kTooLong:
      return "too_long";
    case DropReason::kBadMagic:
      return "bad_magic";
    case DropReason::kBadVersion:
      return "bad_version";
    case DropReason::kBadLength:
      return "bad_length";
    case DropReason::kBadMac:
      return "bad_mac";
    case DropReason::kReplay:
      return "replay";
    case DropReason::kWrongDestination:
      return "wrong_destination";
    case DropReason::kUnknownPeer:
      return "unknown_peer";
    case DropReason::kBadBody:
      return "bad_body";
    case DropReason::kTruncated:
      return "truncated";
    case DropReason::kHandshake:
      return "handshake";
    case DropReason::kLateReply:
      return "late_reply";
    case DropReason::kUnhandled:
      return "unhandled";
    case DropReason::kCount:
      break;
  }
  return "unknown";
}

uint64_t DropSnapshot::Total() const {
  uint64_t total = 0;
  for (uint64_t c : counts) total += c;
  return total;
}

std::string DropSnapshot::ToString() const {
  std::string out;
  for (int i = 0; i < kDropReasonCount; ++i) {
    if (counts[i] == 0) continue;
    absl::StrAppend(&out, out.empty() ? "" : " ", DropReasonName(static_cast<DropReason>(i)), "=",
                    counts[i]);
  }
  return out.empty() ? "none" : out;
}

DropSnapshot DropCounters::Snapshot() const {
  DropSnapshot s;
  for (int i = 0; i < kDropReasonCount; ++i)
    s.counts[i] = counts_[i].load(std::memory_order_relaxed);
  return s;
}

}  // namespace amalgam::fabric
