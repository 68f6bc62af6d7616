#include "virtio/testing/test_driver.h"

#include <cstdlib>

#include "virtio/virtio_ids.h"

namespace amalgam::virtio::testing {
namespace {
void Check(const absl::Status& s) {
  if (!s.ok()) abort();  // test set-up error: the layout itself is wrong
}
}  // namespace

uint64_t TestDriver::Footprint(uint16_t size) {
  uint64_t avail = 16ull * size;
  uint64_t used = (avail + 6 + 2ull * size + 3) & ~3ull;
  return used + 6 + 8ull * size;
}

TestDriver::TestDriver(memory::GuestMemory& mem, uint64_t base, uint16_t size)
    : mem_(mem), size_(size) {
  desc_ = base;
  avail_ = base + 16ull * size;
  used_ = (avail_ + 6 + 2ull * size + 3) & ~3ull;
  std::vector<uint8_t> zero(Footprint(size));
  Check(mem_.Write(memory::GuestAddress(base), zero));
}

void TestDriver::Configure(Queue& q) const {
  q.set_size(size_);
  q.set_desc_table(memory::GuestAddress(desc_));
  q.set_avail_ring(memory::GuestAddress(avail_));
  q.set_used_ring(memory::GuestAddress(used_));
  q.set_ready(true);
}

void TestDriver::SetDescAt(uint64_t table, uint16_t index, uint64_t addr, uint32_t len,
                           uint16_t flags, uint16_t next) {
  VirtqDesc d{addr, len, flags, next};
  Check(mem_.WriteObj(memory::GuestAddress(table + 16ull * index), d));
}

void TestDriver::SetDesc(uint16_t index, uint64_t addr, uint32_t len, uint16_t flags,
                         uint16_t next) {
  SetDescAt(desc_, index, addr, len, flags, next);
}

void TestDriver::Post(uint16_t head) {
  Check(mem_.WriteObj(memory::GuestAddress(avail_ + 4 + 2ull * (avail_idx_ % size_)), head));
  SetAvailIdx(avail_idx_ + 1);
}

void TestDriver::SetAvailIdx(uint16_t idx) {
  avail_idx_ = idx;
  Check(mem_.WriteObj(memory::GuestAddress(avail_ + 2), idx));
}

void TestDriver::SetAvailFlags(uint16_t flags) {
  Check(mem_.WriteObj(memory::GuestAddress(avail_), flags));
}

void TestDriver::SetUsedEvent(uint16_t value) {
  Check(mem_.WriteObj(memory::GuestAddress(avail_ + 4 + 2ull * size_), value));
}

uint16_t TestDriver::AddChain(const std::vector<Seg>& segs) {
  const uint16_t head = next_free_;
  for (size_t i = 0; i < segs.size(); ++i) {
    const uint16_t idx = next_free_;
    next_free_ = static_cast<uint16_t>((next_free_ + 1) % size_);
    uint16_t flags = segs[i].writable ? kDescFlagWrite : 0;
    if (i + 1 < segs.size()) flags |= kDescFlagNext;
    SetDesc(idx, segs[i].addr, segs[i].len, flags, next_free_);
  }
  Post(head);
  return head;
}

uint16_t TestDriver::UsedIdx() const {
  return mem_.ReadObj<uint16_t>(memory::GuestAddress(used_ + 2)).value();
}

std::pair<uint32_t, uint32_t> TestDriver::UsedElem(uint16_t i) const {
  uint64_t slot = used_ + 4 + 8ull * (i % size_);
  return {mem_.ReadObj<uint32_t>(memory::GuestAddress(slot)).value(),
          mem_.ReadObj<uint32_t>(memory::GuestAddress(slot + 4)).value()};
}

uint16_t TestDriver::AvailEvent() const {
  return mem_.ReadObj<uint16_t>(memory::GuestAddress(used_ + 4 + 8ull * size_)).value();
}

}  // namespace amalgam::virtio::testing
