// TestDriver: the guest's side of one split virtqueue, for tests and fuzzers. It lays out the
// descriptor table, avail ring and used ring in a real GuestMemory, writes descriptors (well
// formed or deliberately hostile) and reads back what the device put in the used ring.
// Ownership: borrows the GuestMemory. Thread-safety: not thread-safe.
#ifndef AMALGAM_VIRTIO_TESTING_TEST_DRIVER_H_
#define AMALGAM_VIRTIO_TESTING_TEST_DRIVER_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "memory/guest_memory.h"
#include "virtio/queue.h"

namespace amalgam::virtio::testing {

struct Seg {
  uint64_t addr;
  uint32_t len;
  bool writable;
};

class TestDriver {
 public:
  // Rings at `base` (16-byte aligned, needs 16*size + 6+2*size + 6+8*size bytes + padding).
  TestDriver(memory::GuestMemory& mem, uint64_t base, uint16_t size);

  uint64_t desc_table() const { return desc_; }
  uint64_t avail_ring() const { return avail_; }
  uint64_t used_ring() const { return used_; }
  uint16_t size() const { return size_; }
  // Bytes the rings occupy from base.
  static uint64_t Footprint(uint16_t size);

  // Points `q` at these rings and marks it ready.
  void Configure(Queue& q) const;
  void SetDesc(uint16_t index, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next);
  // Writes a descriptor at an arbitrary address (indirect tables).
  void SetDescAt(uint64_t table, uint16_t index, uint64_t addr, uint32_t len, uint16_t flags,
                 uint16_t next);
  // Puts head in the avail ring and bumps avail idx.
  void Post(uint16_t head);
  void SetAvailIdx(uint16_t idx);
  void SetAvailFlags(uint16_t flags);
  void SetUsedEvent(uint16_t value);
  // Builds a chain from the next free descriptors (wrapping) and posts it; returns its head.
  uint16_t AddChain(const std::vector<Seg>& segs);

  uint16_t UsedIdx() const;
  std::pair<uint32_t, uint32_t> UsedElem(uint16_t i) const;  // (id, len) of slot i % size
  uint16_t AvailEvent() const;

 private:
  memory::GuestMemory& mem_;
  uint64_t desc_, avail_, used_;
  uint16_t size_;
  uint16_t avail_idx_ = 0;
  uint16_t next_free_ = 0;
};

}  // namespace amalgam::virtio::testing

#endif  // AMALGAM_VIRTIO_TESTING_TEST_DRIVER_H_
