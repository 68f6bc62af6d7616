// Feeds arbitrary link-frame bytes to the fragment path: header checks, Reassembler (with small
// limits, so caps and expiry are reached), then the MAC check of anything that completes.
// Invariants: no crash, memory within the caps, completed frames have the size their header says.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "fabric/cluster_key.h"
#include "fabric/dpdk/fragmentation.h"
#include "fabric/frame.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace amalgam::fabric;
  static const FrameKey key = FrameKey::FromBytes({});
  ReassemblyLimits lim;
  lim.max_entries = 8;
  lim.max_entries_per_source = 4;
  lim.max_bytes = 32 * 1024;
  lim.timeout_ns = 50;
  Reassembler r(lim);
  int64_t now = 0;
  // Input: records of [u16 length][length bytes]; each record is one link frame's bytes after
  // the Ethernet header.
  while (size >= 2) {
    size_t len = (data[0] | (data[1] << 8)) % 2048;
    data += 2;
    size -= 2;
    if (len > size) len = size;
    const uint8_t* rec = data;
    data += len;
    size -= len;
    now += 10;
    r.Expire(now);
    if (len < kFrameHeaderSize) continue;
    DropReason why;
    if (!PeekFrameSize(absl::MakeConstSpan(rec, kFrameHeaderSize), &why).ok()) continue;
    FrameHeader h = ReadFrameHeader(rec);
    absl::Span<const uint8_t> chunk(rec + kFrameHeaderSize, len - kFrameHeaderSize);
    if (h.frag_count == 1) continue;
    FrameBuffer out;
    if (r.Add(h, chunk, now, &out) == Reassembler::Outcome::kComplete) {
      FrameHeader whole = ReadFrameHeader(out.data());
      if (out.size() != FrameSize(whole.body_len, whole.payload_len)) abort();
      (void)VerifyFrame(key, out.span(), whole.dst, &why);
    }
    if (r.pending_bytes() > lim.max_bytes || r.pending_frames() > lim.max_entries) abort();
  }
  return 0;
}
