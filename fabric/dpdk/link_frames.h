// mbuf helpers for DpdkTransport: build a link frame (Ethernet header + FrameHeader copy + one
// chunk of an encoded frame) as a chain of pool-sized segments, hold extra references for
// zero-copy retransmission, and read bytes out of possibly chained received mbufs.
// Thread-safety: free functions; the mempool must be safe for the calling thread.
#ifndef AMALGAM_FABRIC_DPDK_LINK_FRAMES_H_
#define AMALGAM_FABRIC_DPDK_LINK_FRAMES_H_

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/types/span.h"
#include "fabric/dpdk/dpdk_transport.h"
#include "fabric/frame.h"

struct rte_mbuf;
struct rte_mempool;

namespace amalgam::fabric {

using Mac = std::array<uint8_t, 6>;

// The bytes after the 48-byte header of an encoded frame, as up to three borrowed parts.
struct FrameTail {
  absl::Span<const uint8_t> parts[3];
  size_t size() const { return parts[0].size() + parts[1].size() + parts[2].size(); }
};
FrameTail TailOf(const EncodedFrame& frame);

// Allocates a chain holding: Ethernet(dst, src, ethertype) | header (48 bytes) | tail bytes
// [offset, offset + length). nullptr if the pool is empty.
rte_mbuf* BuildLinkFrame(rte_mempool* pool, const Mac& dst, const Mac& src, uint16_t ethertype,
                         const uint8_t header[kFrameHeaderSize], const FrameTail& tail,
                         size_t offset, size_t length);

// Adds one reference to every segment (rte_pktmbuf_free drops one per segment).
void RetainChain(rte_mbuf* m);
void FreeChain(rte_mbuf* m);

// Copies `length` bytes at `offset` of the packet into `out`; false if the packet is shorter.
bool ReadBytes(const rte_mbuf* m, size_t offset, size_t length, uint8_t* out);
uint32_t PacketLength(const rte_mbuf* m);

// The link frames of one sent fabric frame, each holding a reference, for retransmission.
// Move-only; frees its references on destruction.
class HeldFrames {
 public:
  HeldFrames() = default;
  ~HeldFrames() { Release(); }
  HeldFrames(HeldFrames&& o) noexcept : mbufs_(std::move(o.mbufs_)) { o.mbufs_.clear(); }
  HeldFrames& operator=(HeldFrames&& o) noexcept {
    if (this != &o) {
      Release();
      mbufs_ = std::move(o.mbufs_);
      o.mbufs_.clear();
    }
    return *this;
  }
  HeldFrames(const HeldFrames&) = delete;
  HeldFrames& operator=(const HeldFrames&) = delete;

  void Add(rte_mbuf* m) { mbufs_.push_back(m); }
  const std::vector<rte_mbuf*>& mbufs() const { return mbufs_; }
  void Release();

 private:
  std::vector<rte_mbuf*> mbufs_;
};

}  // namespace amalgam::fabric

#endif  // AMALGAM_FABRIC_DPDK_LINK_FRAMES_H_
