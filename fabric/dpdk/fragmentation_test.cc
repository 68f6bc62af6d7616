#include "fabric/dpdk/fragmentation.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <random>
#include <vector>

#include "fabric/cluster_key.h"
#include "fabric/frame.h"

namespace amalgam::fabric {
namespace {

constexpr size_t kMtuChunk = 1500 - kFrameHeaderSize;  // link payload 1500, header copy each

struct Fragment {
  FrameHeader header;
  std::vector<uint8_t> chunk;
};

// A real authenticated frame with a page payload, as PeerSession would produce.
std::vector<uint8_t> MakeFrame(const FrameKey& key, NodeId src, uint64_t seq, uint8_t fill) {
  std::vector<uint8_t> body(64, 0xb0);
  std::vector<uint8_t> page(kPageSize);
  for (size_t i = 0; i < page.size(); ++i) page[i] = static_cast<uint8_t>(fill + i * 7);
  FrameHeader h;
  h.src = src;
  h.dst = 9;
  h.seq = seq;
  EncodedFrame enc;
  REQUIRE(EncodeFrame(key, h, body, page, &enc).ok());
  std::vector<uint8_t> out(enc.size());
  enc.CopyTo(out.data());
  return out;
}

std::vector<Fragment> Split(const std::vector<uint8_t>& frame, size_t max_chunk) {
  auto plan = PlanFragments(frame.size(), max_chunk);
  REQUIRE(plan.ok());
  FrameHeader h = ReadFrameHeader(frame.data());
  std::vector<Fragment> out;
  for (uint16_t i = 0; i < plan->count; ++i) {
    size_t off = 0, len = 0;
    REQUIRE(FragmentExtent(frame.size(), plan->count, i, &off, &len));
    REQUIRE(len <= max_chunk);
    Fragment f;
    f.header = h;
    f.header.frag_index = i;
    f.header.frag_count = plan->count;
    f.chunk.assign(frame.begin() + kFrameHeaderSize + off,
                   frame.begin() + kFrameHeaderSize + off + len);
    out.push_back(std::move(f));
  }
  return out;
}

TEST_CASE("a page frame splits into 3 MTU-1500 fragments that cover it exactly") {
  FrameKey key = FrameKey::Generate();
  auto frame = MakeFrame(key, 1, 1, 3);
  auto frags = Split(frame, kMtuChunk);
  REQUIRE(frags.size() == 3);
  size_t total = 0;
  for (auto& f : frags) total += f.chunk.size();
  REQUIRE(total + kFrameHeaderSize == frame.size());
  // A frame that fits needs one fragment; an empty rest still plans one.
  REQUIRE(PlanFragments(200, kMtuChunk)->count == 1);
  REQUIRE(PlanFragments(kFrameHeaderSize, kMtuChunk)->count == 1);
  REQUIRE_FALSE(PlanFragments(10, kMtuChunk).ok());
  REQUIRE_FALSE(PlanFragments(kMaxFrameSize, 16).ok());  // would need > kMaxFragments
}

TEST_CASE("fragments in any order reassemble to the authenticated frame") {
  FrameKey key = FrameKey::Generate();
  std::mt19937 rng(7);
  Reassembler r;
  for (int round = 0; round < 50; ++round) {
    auto frame = MakeFrame(key, 1, round + 1, static_cast<uint8_t>(round));
    auto frags = Split(frame, 1000);
    std::shuffle(frags.begin(), frags.end(), rng);
    FrameBuffer out;
    for (size_t i = 0; i < frags.size(); ++i) {
      auto o = r.Add(frags[i].header, frags[i].chunk, 0, &out);
      REQUIRE(o == (i + 1 == frags.size() ? Reassembler::Outcome::kComplete
                                          : Reassembler::Outcome::kIncomplete));
    }
    REQUIRE(std::vector<uint8_t>(out.data(), out.data() + out.size()) == frame);
    DropReason why;
    REQUIRE(VerifyFrame(key, out.span(), 9, &why).ok());
  }
  REQUIRE(r.pending_frames() == 0);
  REQUIRE(r.pending_bytes() == 0);
  REQUIRE(r.counters().completed == 50);
}

TEST_CASE("duplicate fragments are dropped and counted; the first copy wins") {
  FrameKey key = FrameKey::Generate();
  auto frame = MakeFrame(key, 1, 5, 1);
  auto frags = Split(frame, kMtuChunk);
  Reassembler r;
  FrameBuffer out;
  REQUIRE(r.Add(frags[0].header, frags[0].chunk, 0, &out) == Reassembler::Outcome::kIncomplete);
  auto evil = frags[0].chunk;
  evil[0] ^= 0xff;
  REQUIRE(r.Add(frags[0].header, evil, 0, &out) == Reassembler::Outcome::kDropped);
  REQUIRE(r.counters().duplicate_fragments == 1);
  REQUIRE(r.Add(frags[1].header, frags[1].chunk, 0, &out) == Reassembler::Outcome::kIncomplete);
  REQUIRE(r.Add(frags[2].header, frags[2].chunk, 0, &out) == Reassembler::Outcome::kComplete);
  DropReason why;
  REQUIRE(VerifyFrame(key, out.span(), 9, &why).ok());
}

TEST_CASE("overlapping, misplaced or inconsistent fragments are refused") {
  FrameKey key = FrameKey::Generate();
  auto frame = MakeFrame(key, 1, 6, 2);
  auto frags = Split(frame, kMtuChunk);
  Reassembler r;
  FrameBuffer out;
  // A chunk longer than its slot would overlap the next fragment.
  auto longer = frags[0].chunk;
  longer.push_back(0);
  REQUIRE(r.Add(frags[0].header, longer, 0, &out) == Reassembler::Outcome::kDropped);
  // A shorter chunk would leave a hole.
  auto shorter = frags[1].chunk;
  shorter.pop_back();
  REQUIRE(r.Add(frags[1].header, shorter, 0, &out) == Reassembler::Outcome::kDropped);
  // Index out of range, count of 1 or absurd counts.
  FrameHeader bad = frags[0].header;
  bad.frag_index = 3;
  REQUIRE(r.Add(bad, frags[0].chunk, 0, &out) == Reassembler::Outcome::kDropped);
  bad = frags[0].header;
  bad.frag_count = 1;
  REQUIRE(r.Add(bad, frags[0].chunk, 0, &out) == Reassembler::Outcome::kDropped);
  bad.frag_count = 1000;
  REQUIRE(r.Add(bad, frags[0].chunk, 0, &out) == Reassembler::Outcome::kDropped);
  bad = frags[0].header;
  bad.payload_len = 1u << 30;
  REQUIRE(r.Add(bad, frags[0].chunk, 0, &out) == Reassembler::Outcome::kDropped);
  REQUIRE(r.counters().bad_geometry == 6);
  REQUIRE(r.pending_frames() == 0);
  // Same (src, seq) but another geometry/rpc id: inconsistent with the first fragment seen.
  REQUIRE(r.Add(frags[0].header, frags[0].chunk, 0, &out) == Reassembler::Outcome::kIncomplete);
  FrameHeader other = frags[1].header;
  other.rpc_id = 77;
  REQUIRE(r.Add(other, frags[1].chunk, 0, &out) == Reassembler::Outcome::kDropped);
  REQUIRE(r.counters().inconsistent_fragments == 1);
  REQUIRE(r.Add(frags[1].header, frags[1].chunk, 0, &out) == Reassembler::Outcome::kIncomplete);
  REQUIRE(r.Add(frags[2].header, frags[2].chunk, 0, &out) == Reassembler::Outcome::kComplete);
}

TEST_CASE("a forged fragment survives reassembly only to fail the MAC") {
  FrameKey key = FrameKey::Generate();
  auto frame = MakeFrame(key, 1, 8, 4);
  auto frags = Split(frame, kMtuChunk);
  frags[1].chunk[10] ^= 1;
  Reassembler r;
  FrameBuffer out;
  for (auto& f : frags) r.Add(f.header, f.chunk, 0, &out);
  REQUIRE(out.size() == frame.size());
  DropReason why;
  REQUIRE_FALSE(VerifyFrame(key, out.span(), 9, &why).ok());
  REQUIRE(why == DropReason::kBadMac);
}

TEST_CASE("a flood of first fragments is capped, counted, and expires") {
  FrameKey key = FrameKey::Generate();
  ReassemblyLimits lim;
  lim.max_entries = 16;
  lim.max_entries_per_source = 8;
  lim.max_bytes = 1 << 20;
  lim.timeout_ns = 1000;
  Reassembler r(lim);
  auto frame = MakeFrame(key, 1, 1, 0);
  auto frags = Split(frame, kMtuChunk);
  FrameBuffer out;
  // One source floods: only max_entries_per_source are kept.
  for (uint64_t s = 1; s <= 1000; ++s) {
    FrameHeader h = frags[0].header;
    h.seq = s;
    r.Add(h, frags[0].chunk, 0, &out);
  }
  REQUIRE(r.pending_frames() == 8);
  REQUIRE(r.counters().table_full == 992);
  // Many claimed sources: the global cap holds.
  for (NodeId src = 100; src < 200; ++src) {
    FrameHeader h = frags[0].header;
    h.src = src;
    r.Add(h, frags[0].chunk, 0, &out);
  }
  REQUIRE(r.pending_frames() == 16);
  REQUIRE(r.pending_bytes() <= lim.max_bytes);
  // A real frame gets through again once the junk times out.
  r.Expire(500);
  REQUIRE(r.pending_frames() == 16);
  r.Expire(2000);
  REQUIRE(r.pending_frames() == 0);
  REQUIRE(r.pending_bytes() == 0);
  REQUIRE(r.counters().timed_out == 16);
  FrameBuffer done;
  for (auto& f : frags) r.Add(f.header, f.chunk, 3000, &done);
  REQUIRE(done.size() == frame.size());
}

TEST_CASE("the byte cap holds even when entries are allowed") {
  ReassemblyLimits lim;
  lim.max_entries = 1000;
  lim.max_entries_per_source = 1000;
  lim.max_bytes = 64 * 1024;
  Reassembler r(lim);
  FrameHeader h;
  h.src = 1;
  h.dst = 9;
  h.body_len = 8;
  h.payload_len = kPageSize;
  h.frag_count = 3;
  size_t size = FrameSize(h.body_len, h.payload_len);
  size_t off, len;
  REQUIRE(FragmentExtent(size, 3, 0, &off, &len));
  std::vector<uint8_t> chunk(len);
  FrameBuffer out;
  for (uint64_t s = 1; s < 100; ++s) {
    h.seq = s;
    r.Add(h, chunk, 0, &out);
  }
  REQUIRE(r.pending_bytes() <= lim.max_bytes);
  REQUIRE(r.pending_frames() == lim.max_bytes / size);
  r.DropSource(1);
  REQUIRE(r.pending_frames() == 0);
  REQUIRE(r.counters().purged == lim.max_bytes / size);
}

}  // namespace
}  // namespace amalgam::fabric
