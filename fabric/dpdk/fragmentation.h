// Splitting one fabric frame (frame.h) over several link frames and putting it back together.
//
// Wire rule: every fragment carries a copy of the 48-byte FrameHeader with frag_index/frag_count
// set, followed by one chunk of the bytes after the header (body, payload, MAC). The split is
// deterministic, so a receiver can check each fragment's place and length without trusting it:
//   R = frame size - kFrameHeaderSize, n = frag_count, c = ceil(R / n),
//   fragment i holds bytes [i*c, min(R, (i+1)*c)) of R.
// The sender picks the smallest n whose c fits the link (PlanFragments). Reassembly restores
// frag_index 0 / frag_count 1 in the header, so the MAC is checked over exactly the bytes the
// sender's EncodeFrame authenticated; a forged or mixed-up fragment makes that check fail.
#ifndef AMALGAM_FABRIC_DPDK_FRAGMENTATION_H_
#define AMALGAM_FABRIC_DPDK_FRAGMENTATION_H_

#include <cstddef>
#include <cstdint>
#include <list>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "fabric/frame.h"
#include "fabric/message.h"

namespace amalgam::fabric {

inline constexpr uint16_t kMaxFragments = 64;

struct FragmentPlan {
  uint16_t count = 1;  // fragments
  size_t chunk = 0;    // bytes after the header in every fragment but possibly the last
};

// Plans the split of a `frame_size`-byte frame for links that carry at most `max_chunk` bytes
// after the header copy. INVALID_ARGUMENT if the frame is smaller than a header or would need
// more than kMaxFragments fragments.
absl::StatusOr<FragmentPlan> PlanFragments(size_t frame_size, size_t max_chunk);

// Offset (within the bytes after the header) and length of fragment `index`; false if the
// geometry (frame size, count, index) is impossible.
bool FragmentExtent(size_t frame_size, uint16_t count, uint16_t index, size_t* offset,
                    size_t* length);

struct ReassemblyLimits {
  // Per source at least the sender's window (RetransmitOptions.window): under loss every
  // in-flight frame may be waiting for one missing fragment.
  size_t max_entries = 1024;            // frames being reassembled, all sources together
  size_t max_entries_per_source = 256;  // per claimed source node
  size_t max_bytes = 8u << 20;          // buffer bytes held by unfinished frames
  int64_t timeout_ns = 200'000'000;     // an unfinished frame is dropped after this
};

struct ReassemblyCounters {
  uint64_t completed = 0;
  uint64_t duplicate_fragments = 0;     // same (src, seq, index) again: first copy wins
  uint64_t inconsistent_fragments = 0;  // header disagrees with the frame's first fragment
  uint64_t bad_geometry = 0;            // impossible index/count/length (overlap, gap, size)
  uint64_t table_full = 0;              // new frame refused: entry or byte cap reached
  uint64_t timed_out = 0;               // unfinished frames dropped by Expire
  uint64_t purged = 0;                  // unfinished frames dropped by DropSource
};

// Reassembles fragmented frames keyed by (claimed src, seq). Memory is bounded by the limits: a
// flood of first fragments fills at most max_entries/max_bytes and then is refused and counted.
// Fragments are not authenticated individually; the reassembled frame is (by the caller).
// Thread-safety: not thread-safe (one per receive path). Owns its partial buffers.
class Reassembler {
 public:
  enum class Outcome { kIncomplete, kComplete, kDropped };

  explicit Reassembler(ReassemblyLimits limits = {}) : limits_(limits) {}

  // Adds one fragment (header already decoded, `chunk` = bytes after the header copy). On
  // kComplete, *frame holds the whole frame with frag_index 0 / frag_count 1.
  Outcome Add(const FrameHeader& header, absl::Span<const uint8_t> chunk, int64_t now_ns,
              FrameBuffer* frame);
  // Drops unfinished frames older than the timeout.
  void Expire(int64_t now_ns);
  // Drops every unfinished frame from `src` (e.g. the peer restarted its session).
  void DropSource(NodeId src);

  size_t pending_frames() const { return entries_.size(); }
  size_t pending_bytes() const { return bytes_; }
  const ReassemblyCounters& counters() const { return counters_; }

 private:
  struct Key {
    NodeId src;
    uint64_t seq;
    bool operator==(const Key& o) const { return src == o.src && seq == o.seq; }
    template <typename H>
    friend H AbslHashValue(H h, const Key& k) {
      return H::combine(std::move(h), k.src, k.seq);
    }
  };
  struct Entry {
    FrameHeader first;  // header of the first fragment seen (frag_index ignored)
    FrameBuffer buffer;
    uint64_t have = 0;  // bit i: fragment i stored
    uint16_t received = 0;
    int64_t started_ns = 0;
    std::list<Key>::iterator age;  // position in age_order_
  };
  void Erase(absl::flat_hash_map<Key, Entry>::iterator it);

  ReassemblyLimits limits_;
  absl::flat_hash_map<Key, Entry> entries_;
  absl::flat_hash_map<NodeId, size_t> per_source_;
  std::list<Key> age_order_;  // oldest first, for Expire
  size_t bytes_ = 0;
  ReassemblyCounters counters_;
};

}  // namespace amalgam::fabric

#endif  // AMALGAM_FABRIC_DPDK_FRAGMENTATION_H_
