// libFuzzer target: arbitrary guest RAM contents (descriptor tables, avail ring, indirect tables)
// fed to Queue::Pop / AddUsed / NeedsInterrupt. Every input must end in a value or an error
// Status: no crash, no out-of-bounds access (ASan), no hang (the hop limit).
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "virtio/queue.h"

namespace {
constexpr uint64_t kRam = 64 * 1024;
amalgam::memory::GuestMemory& Mem() {
  static auto* mem =
      amalgam::memory::GuestMemory::Create({{amalgam::memory::GuestAddress(0), kRam}})
          .value()
          .release();
  return *mem;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using amalgam::memory::GuestAddress;
  if (size < 4) return 0;
  auto& mem = Mem();
  uint8_t* ram = mem.regions()[0].host_address();
  memset(ram, 0, kRam);
  const uint8_t params = data[0];
  const uint16_t qsize = uint16_t{1} << (params & 7);  // 1..128
  const bool indirect = params & 8;
  const bool event_idx = params & 16;
  const uint64_t rings = (uint64_t{data[1]} << 8) & ~uint64_t{0xf};  // somewhere in the first 64K
  memcpy(ram, data + 4, std::min<size_t>(size - 4, kRam));

  amalgam::virtio::Queue q(128);
  q.set_size(qsize);
  q.set_desc_table(GuestAddress(rings));
  q.set_avail_ring(GuestAddress(rings + 16ull * qsize));
  q.set_used_ring(GuestAddress((rings + 16ull * qsize + 6 + 2ull * qsize + 3) & ~3ull));
  q.set_indirect(indirect);
  q.set_event_idx(event_idx);
  if (!q.Validate(mem).ok()) return 0;
  q.set_ready(true);
  for (int i = 0; i < 2 * qsize; ++i) {
    auto chain = q.Pop(mem);
    if (!chain.ok() || !chain->has_value()) break;
    (void)q.AddUsed(mem, (*chain)->head, static_cast<uint32_t>((*chain)->writable_bytes));
  }
  (void)q.NeedsInterrupt(mem);
  (void)q.RequestNotification(mem);
  // And the parser alone, from an arbitrary head.
  (void)amalgam::virtio::ParseChain(mem, GuestAddress(rings), qsize, data[2] % qsize, indirect);
  return 0;
}
