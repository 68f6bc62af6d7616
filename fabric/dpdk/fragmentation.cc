#include "fabric/dpdk/fragmentation.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace amalgam::fabric {

absl::StatusOr<FragmentPlan> PlanFragments(size_t frame_size, size_t max_chunk) {
  if (frame_size < kFrameHeaderSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("frame of ", frame_size, " bytes is shorter than its header"));
  }
  if (max_chunk == 0) return absl::InvalidArgumentError("max_chunk must be > 0 (link too small)");
  size_t rest = frame_size - kFrameHeaderSize;
  size_t n = rest == 0 ? 1 : (rest + max_chunk - 1) / max_chunk;
  if (n > kMaxFragments) {
    return absl::InvalidArgumentError(
        absl::StrCat("frame of ", frame_size, " bytes needs ", n, " fragments of at most ",
                     max_chunk, " bytes; the limit is ", kMaxFragments, " (raise the link MTU)"));
  }
  FragmentPlan plan;
  plan.count = static_cast<uint16_t>(n);
  plan.chunk = n == 0 ? 0 : (rest + n - 1) / n;
  return plan;
}

bool FragmentExtent(size_t frame_size, uint16_t count, uint16_t index, size_t* offset,
                    size_t* length) {
  if (frame_size < kFrameHeaderSize || count == 0 || count > kMaxFragments || index >= count) {
    return false;
  }
  size_t rest = frame_size - kFrameHeaderSize;
  size_t chunk = (rest + count - 1) / count;
  // The last fragment must not be empty (the sender's plan never produces that).
  if (count > 1 && static_cast<size_t>(count - 1) * chunk >= rest) return false;
  *offset = static_cast<size_t>(index) * chunk;
  *length = index + 1 == count ? rest - *offset : chunk;
  return true;
}

namespace {
// Fields every fragment of one frame must agree on (all but frag_index).
bool SameFrame(const FrameHeader& a, const FrameHeader& b) {
  return a.magic == b.magic && a.version == b.version && a.flags == b.flags && a.type == b.type &&
         a.src == b.src && a.dst == b.dst && a.seq == b.seq && a.rpc_id == b.rpc_id &&
         a.body_len == b.body_len && a.payload_len == b.payload_len &&
         a.frag_count == b.frag_count && a.reserved == b.reserved;
}
}  // namespace

Reassembler::Outcome Reassembler::Add(const FrameHeader& header, absl::Span<const uint8_t> chunk,
                                      int64_t now_ns, FrameBuffer* frame) {
  if (header.body_len > kMaxBodySize || header.payload_len > kMaxPayloadSize ||
      header.frag_count < 2) {
    ++counters_.bad_geometry;
    return Outcome::kDropped;
  }
  size_t size = FrameSize(header.body_len, header.payload_len);
  size_t offset = 0, length = 0;
  if (!FragmentExtent(size, header.frag_count, header.frag_index, &offset, &length) ||
      length != chunk.size()) {
    ++counters_.bad_geometry;
    return Outcome::kDropped;
  }
  Key key{header.src, header.seq};
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    size_t& from_src = per_source_[header.src];
    if (entries_.size() >= limits_.max_entries || from_src >= limits_.max_entries_per_source ||
        bytes_ + size > limits_.max_bytes) {
      if (from_src == 0) per_source_.erase(header.src);
      ++counters_.table_full;
      return Outcome::kDropped;
    }
    ++from_src;
    Entry e;
    e.first = header;
    e.buffer = FrameBuffer::Allocate(size);
    e.started_ns = now_ns;
    age_order_.push_back(key);
    e.age = std::prev(age_order_.end());
    bytes_ += size;
    it = entries_.emplace(key, std::move(e)).first;
  }
  Entry& e = it->second;
  if (!SameFrame(e.first, header)) {
    ++counters_.inconsistent_fragments;
    return Outcome::kDropped;
  }
  uint64_t bit = uint64_t{1} << header.frag_index;
  if (e.have & bit) {
    ++counters_.duplicate_fragments;
    return Outcome::kDropped;
  }
  if (!chunk.empty())
    std::memcpy(e.buffer.data() + kFrameHeaderSize + offset, chunk.data(), length);
  e.have |= bit;
  if (++e.received < header.frag_count) return Outcome::kIncomplete;

  FrameHeader whole = e.first;
  whole.frag_index = 0;
  whole.frag_count = 1;
  WriteFrameHeader(whole, e.buffer.data());
  *frame = std::move(e.buffer);
  ++counters_.completed;
  Erase(it);
  return Outcome::kComplete;
}

void Reassembler::Erase(absl::flat_hash_map<Key, Entry>::iterator it) {
  const Entry& e = it->second;
  bytes_ -= FrameSize(e.first.body_len, e.first.payload_len);
  auto src = per_source_.find(it->first.src);
  if (src != per_source_.end() && --src->second == 0) per_source_.erase(src);
  age_order_.erase(e.age);
  entries_.erase(it);
}

void Reassembler::Expire(int64_t now_ns) {
  while (!age_order_.empty()) {
    auto it = entries_.find(age_order_.front());
    if (now_ns - it->second.started_ns < limits_.timeout_ns) break;
    ++counters_.timed_out;
    Erase(it);
  }
}

void Reassembler::DropSource(NodeId src) {
  for (auto k = age_order_.begin(); k != age_order_.end();) {
    Key key = *k++;
    if (key.src != src) continue;
    ++counters_.purged;
    Erase(entries_.find(key));
  }
}

}  // namespace amalgam::fabric
