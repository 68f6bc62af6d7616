#include "virtio/queue.h"

#include <atomic>
#include <limits>

#include "absl/strings/str_cat.h"
#include "virtio/virtio_ids.h"

namespace amalgam::virtio {
namespace {

constexpr uint64_t kDescSize = sizeof(VirtqDesc);
// Avail ring: flags, idx, ring[size], used_event. Used ring: flags, idx, ring[size] of
// {u32 id, u32 len}, avail_event.
uint64_t AvailRingBytes(uint16_t size) { return 4 + 2ull * size + 2; }
uint64_t UsedRingBytes(uint16_t size) { return 4 + 8ull * size + 2; }

// A 16-bit ring index in guest RAM, accessed atomically: these are the words the driver and
// the device publish to each other, so they need acquire/release ordering, not a memcpy.
absl::StatusOr<uint16_t*> RingWord(const GuestMemory& mem, GuestAddress addr) {
  absl::StatusOr<uint8_t*> p = mem.GetHostAddress(addr, 2);
  if (!p.ok()) return p.status();
  return reinterpret_cast<uint16_t*>(*p);  // 2-byte aligned: Validate checked ring alignment
}

absl::Status CheckRing(const GuestMemory& mem, const char* name, GuestAddress addr, uint64_t bytes,
                       uint64_t align) {
  if (addr.value() % align != 0) {
    return absl::InvalidArgumentError(absl::StrCat("virtqueue ", name, " address 0x",
                                                   absl::Hex(addr.value()), " is not aligned to ",
                                                   align, " bytes"));
  }
  if (!addr.CheckedAdd(bytes).has_value() || !mem.IsValidRange(addr, bytes)) {
    return absl::OutOfRangeError(absl::StrCat("virtqueue ", name, " [0x", absl::Hex(addr.value()),
                                              ", +", bytes, ") is not inside guest RAM"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DescriptorChain> ParseChain(const GuestMemory& mem, GuestAddress desc_table,
                                           uint16_t queue_size, uint16_t head,
                                           bool indirect_allowed) {
  if (queue_size == 0 || head >= queue_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("descriptor head ", head, " is outside the queue (size ", queue_size, ")"));
  }
  DescriptorChain chain;
  chain.head = head;
  GuestAddress table = desc_table;
  uint32_t count = queue_size;  // entries in the current table; also the hop limit
  uint32_t index = head;
  uint32_t hops = 0;
  bool in_indirect = false;
  bool seen_writable = false;
  while (true) {
    if (++hops > count) {
      return absl::InvalidArgumentError(
          absl::StrCat("descriptor chain from head ", head, " is longer than its table (", count,
                       " entries): a loop or a chain longer than the queue"));
    }
    absl::StatusOr<VirtqDesc> desc =
        mem.ReadObj<VirtqDesc>(table.UncheckedAdd(uint64_t{index} * kDescSize));
    if (!desc.ok()) {
      return absl::OutOfRangeError(absl::StrCat("descriptor ", index, " of chain ", head,
                                                " cannot be read: ", desc.status().message()));
    }
    if (desc->flags & kDescFlagIndirect) {
      if (in_indirect) {
        return absl::InvalidArgumentError(
            absl::StrCat("chain ", head, ": INDIRECT descriptor inside an indirect table"));
      }
      if (!indirect_allowed) {
        return absl::InvalidArgumentError(absl::StrCat(
            "chain ", head, ": INDIRECT descriptor but VIRTIO_F_INDIRECT_DESC not negotiated"));
      }
      if (desc->flags & kDescFlagNext) {
        return absl::InvalidArgumentError(
            absl::StrCat("chain ", head, ": INDIRECT descriptor also has NEXT set"));
      }
      if (desc->len == 0 || desc->len % kDescSize != 0) {
        return absl::InvalidArgumentError(absl::StrCat("chain ", head, ": indirect table length ",
                                                       desc->len, " is not a multiple of 16"));
      }
      // The spec caps any chain at the queue size, indirect ones included; without the cap a
      // guest could hand us a 4 GiB table of 2^28 descriptors to walk and to store.
      if (desc->len / kDescSize > queue_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("chain ", head, ": indirect table of ", desc->len / kDescSize,
                         " descriptors is longer than the queue (", queue_size, ")"));
      }
      GuestAddress ind(desc->addr);
      if (!ind.CheckedAdd(desc->len).has_value() || !mem.IsValidRange(ind, desc->len)) {
        return absl::OutOfRangeError(absl::StrCat("chain ", head, ": indirect table [0x",
                                                  absl::Hex(desc->addr), ", +", desc->len,
                                                  ") is not inside guest RAM"));
      }
      table = ind;
      count = desc->len / kDescSize;
      index = 0;
      hops = 0;
      in_indirect = true;
      continue;
    }
    GuestAddress addr(desc->addr);
    if (!addr.CheckedAdd(desc->len).has_value() || !mem.IsValidRange(addr, desc->len)) {
      return absl::OutOfRangeError(absl::StrCat("chain ", head, ": buffer [0x",
                                                absl::Hex(desc->addr), ", +", desc->len,
                                                ") is not inside guest RAM"));
    }
    const bool writable = desc->flags & kDescFlagWrite;
    if (!writable && seen_writable) {
      return absl::InvalidArgumentError(
          absl::StrCat("chain ", head, ": device-readable descriptor after a device-writable one"));
    }
    seen_writable |= writable;
    // The used ring reports written bytes as a u32; a chain whose total does not fit is bogus.
    if (chain.readable_bytes + chain.writable_bytes + desc->len >
        std::numeric_limits<uint32_t>::max()) {
      return absl::InvalidArgumentError(
          absl::StrCat("chain ", head, ": total length overflows 32 bits"));
    }
    if (writable) {
      chain.writable.push_back({addr, desc->len});
      chain.writable_bytes += desc->len;
    } else {
      chain.readable.push_back({addr, desc->len});
      chain.readable_bytes += desc->len;
    }
    if (!(desc->flags & kDescFlagNext)) break;
    index = desc->next;
    if (index >= count) {
      return absl::InvalidArgumentError(absl::StrCat(
          "chain ", head, ": next index ", index, " is outside its table (", count, " entries)"));
    }
  }
  return chain;
}

Queue::Queue(uint16_t max_size) : max_size_(max_size), size_(max_size) {}

void Queue::Reset() {
  size_ = max_size_;
  ready_ = false;
  desc_table_ = avail_ring_ = used_ring_ = GuestAddress(0);
  event_idx_ = indirect_ = false;
  next_avail_ = next_used_ = signalled_used_ = 0;
}

absl::Status Queue::Validate(const GuestMemory& mem) const {
  if (size_ == 0 || size_ > max_size_ || (size_ & (size_ - 1)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "virtqueue size ", size_, " must be a power of two between 1 and ", max_size_));
  }
  absl::Status s = CheckRing(mem, "descriptor table", desc_table_, kDescSize * size_, 16);
  if (s.ok()) s = CheckRing(mem, "avail ring", avail_ring_, AvailRingBytes(size_), 2);
  if (s.ok()) s = CheckRing(mem, "used ring", used_ring_, UsedRingBytes(size_), 4);
  return s;
}

absl::StatusOr<uint16_t> Queue::LoadAvailIdx(const GuestMemory& mem) const {
  absl::StatusOr<uint16_t*> word = RingWord(mem, avail_ring_.UncheckedAdd(2));
  if (!word.ok()) return word.status();
  // Acquire: the ring entries and descriptors the driver wrote before bumping idx are visible.
  return __atomic_load_n(*word, __ATOMIC_ACQUIRE);
}

absl::StatusOr<std::optional<DescriptorChain>> Queue::Pop(const GuestMemory& mem) {
  if (!ready_) return absl::FailedPreconditionError("virtqueue is not ready");
  absl::StatusOr<uint16_t> avail_idx = LoadAvailIdx(mem);
  if (!avail_idx.ok()) return avail_idx.status();
  const uint16_t pending = static_cast<uint16_t>(*avail_idx - next_avail_);
  if (pending == 0) return std::optional<DescriptorChain>();
  if (pending > size_) {
    return absl::InvalidArgumentError(absl::StrCat("avail index ", *avail_idx, " is ", pending,
                                                   " entries ahead of the device (queue size ",
                                                   size_, ")"));
  }
  const GuestAddress slot = avail_ring_.UncheckedAdd(4 + 2ull * (next_avail_ % size_));
  absl::StatusOr<uint16_t> head = mem.ReadObj<uint16_t>(slot);
  if (!head.ok()) return head.status();
  absl::StatusOr<DescriptorChain> chain = ParseChain(mem, desc_table_, size_, *head, indirect_);
  if (!chain.ok()) return chain.status();
  ++next_avail_;
  return std::optional<DescriptorChain>(std::move(*chain));
}

absl::Status Queue::AddUsed(GuestMemory& mem, uint16_t head, uint32_t written) {
  if (!ready_) return absl::FailedPreconditionError("virtqueue is not ready");
  if (head >= size_) {
    return absl::InvalidArgumentError(absl::StrCat("used head ", head, " >= queue size ", size_));
  }
  struct {
    uint32_t id;
    uint32_t len;
  } elem{head, written};
  const GuestAddress slot = used_ring_.UncheckedAdd(4 + 8ull * (next_used_ % size_));
  absl::Status s = mem.WriteObj(slot, elem);
  if (!s.ok()) return s;
  absl::StatusOr<uint16_t*> idx = RingWord(mem, used_ring_.UncheckedAdd(2));
  if (!idx.ok()) return idx.status();
  ++next_used_;
  // Release: the element above is visible to the driver before the new index.
  __atomic_store_n(*idx, next_used_, __ATOMIC_RELEASE);
  return mem.MarkDirty(used_ring_.UncheckedAdd(2), 2);
}

absl::StatusOr<bool> Queue::NeedsInterrupt(const GuestMemory& mem) {
  // Full fence: our used-index store must be ordered before we read the driver's suppression
  // state, or both sides may decide the other will act (a lost interrupt).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const uint16_t old_used = signalled_used_;
  signalled_used_ = next_used_;
  if (event_idx_) {
    absl::StatusOr<uint16_t> used_event =
        mem.ReadObj<uint16_t>(avail_ring_.UncheckedAdd(4 + 2ull * size_));
    if (!used_event.ok()) return used_event.status();
    // vring_need_event: interrupt iff used_event lies in (old_used, next_used].
    return static_cast<uint16_t>(next_used_ - *used_event - 1) <
           static_cast<uint16_t>(next_used_ - old_used);
  }
  absl::StatusOr<uint16_t> flags = mem.ReadObj<uint16_t>(avail_ring_);
  if (!flags.ok()) return flags.status();
  return old_used != next_used_ && !(*flags & kAvailFlagNoInterrupt);
}

absl::Status Queue::RequestNotification(GuestMemory& mem) {
  if (!event_idx_) return absl::OkStatus();
  absl::StatusOr<uint16_t*> word = RingWord(mem, used_ring_.UncheckedAdd(4 + 8ull * size_));
  if (!word.ok()) return word.status();
  __atomic_store_n(*word, next_avail_, __ATOMIC_RELEASE);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return mem.MarkDirty(used_ring_.UncheckedAdd(4 + 8ull * size_), 2);
}

}  // namespace amalgam::virtio
