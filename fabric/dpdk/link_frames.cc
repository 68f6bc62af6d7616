#include "fabric/dpdk/link_frames.h"

#include <rte_ether.h>
#include <rte_mbuf.h>

#include <algorithm>
#include <cstring>

namespace amalgam::fabric {

FrameTail TailOf(const EncodedFrame& frame) {
  FrameTail t;
  t.parts[0] = frame.body;
  t.parts[1] = frame.payload;
  t.parts[2] = absl::Span<const uint8_t>(frame.mac, kFrameMacSize);
  return t;
}

namespace {

// Appends `len` bytes to the chain, adding segments as needed. False if the pool ran dry.
bool Append(rte_mempool* pool, rte_mbuf* head, rte_mbuf** tail, const uint8_t* data, size_t len) {
  while (len > 0) {
    if (rte_pktmbuf_tailroom(*tail) == 0) {
      rte_mbuf* seg = rte_pktmbuf_alloc(pool);
      if (seg == nullptr) return false;
      if (rte_pktmbuf_chain(head, seg) != 0) {
        rte_pktmbuf_free(seg);
        return false;
      }
      *tail = seg;
    }
    size_t n = std::min<size_t>(len, rte_pktmbuf_tailroom(*tail));
    std::memcpy(rte_pktmbuf_mtod_offset(*tail, uint8_t*, (*tail)->data_len), data, n);
    (*tail)->data_len += n;
    head->pkt_len += n;
    data += n;
    len -= n;
  }
  return true;
}

}  // namespace

rte_mbuf* BuildLinkFrame(rte_mempool* pool, const Mac& dst, const Mac& src, uint16_t ethertype,
                         const uint8_t header[kFrameHeaderSize], const FrameTail& tail,
                         size_t offset, size_t length) {
  rte_mbuf* head = rte_pktmbuf_alloc(pool);
  if (head == nullptr) return nullptr;
  rte_mbuf* last = head;
  uint8_t eth[kEthHeaderSize];
  std::memcpy(eth, dst.data(), 6);
  std::memcpy(eth + 6, src.data(), 6);
  eth[12] = static_cast<uint8_t>(ethertype >> 8);
  eth[13] = static_cast<uint8_t>(ethertype);
  bool ok = Append(pool, head, &last, eth, sizeof(eth)) &&
            Append(pool, head, &last, header, kFrameHeaderSize);
  size_t skip = offset;
  for (const auto& part : tail.parts) {
    if (!ok || length == 0) break;
    if (skip >= part.size()) {
      skip -= part.size();
      continue;
    }
    size_t n = std::min(length, part.size() - skip);
    ok = Append(pool, head, &last, part.data() + skip, n);
    skip = 0;
    length -= n;
  }
  if (!ok || length != 0) {
    rte_pktmbuf_free(head);
    return nullptr;
  }
  return head;
}

void RetainChain(rte_mbuf* m) {
  for (; m != nullptr; m = m->next) rte_mbuf_refcnt_update(m, 1);
}

void FreeChain(rte_mbuf* m) { rte_pktmbuf_free(m); }

bool ReadBytes(const rte_mbuf* m, size_t offset, size_t length, uint8_t* out) {
  if (offset + length > m->pkt_len) return false;
  const void* p = rte_pktmbuf_read(m, offset, length, out);
  if (p == nullptr) return false;
  if (p != out) std::memcpy(out, p, length);
  return true;
}

uint32_t PacketLength(const rte_mbuf* m) { return m->pkt_len; }

void HeldFrames::Release() {
  for (rte_mbuf* m : mbufs_) rte_pktmbuf_free(m);
  mbufs_.clear();
}

}  // namespace amalgam::fabric
