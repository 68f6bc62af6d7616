// Queue: one split virtqueue (virtio 1.x section 2.7) living in guest RAM, seen from the device.
//
// Everything the guest supplies is checked before it is used: ring addresses and sizes when the
// queue is activated, the avail index against the queue size, every descriptor index, every
// buffer's address + length (with overflow checks) against guest RAM, chain length (a hop limit
// catches loops), indirect tables (one level only, length a multiple of 16, at most queue-size
// entries) and the order of
// readable and writable buffers. A violation is an error Status; the device turns it into a
// device error (DEVICE_NEEDS_RESET) and the VMM keeps running.
//
// Ownership: the Queue holds only addresses; the GuestMemory is passed to each call and must
// outlive it. Thread-safety: not thread-safe; the owning transport serializes all calls.
#ifndef AMALGAM_VIRTIO_QUEUE_H_
#define AMALGAM_VIRTIO_QUEUE_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "memory/guest_address.h"
#include "memory/guest_memory.h"

namespace amalgam::virtio {

using memory::GuestAddress;
using memory::GuestMemory;

// The guest's descriptor layout (little-endian; x86 only, so no byte swapping).
struct VirtqDesc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(VirtqDesc) == 16);

// One guest buffer of a chain, already checked to lie inside guest RAM.
struct ChainBuffer {
  GuestAddress addr;
  uint32_t len = 0;
};

// A parsed descriptor chain: its head index (what goes back in the used ring) and its buffers,
// the device-readable ones first, then the device-writable ones.
struct DescriptorChain {
  uint16_t head = 0;
  std::vector<ChainBuffer> readable;
  std::vector<ChainBuffer> writable;
  uint64_t readable_bytes = 0;
  uint64_t writable_bytes = 0;
};

// Walks the chain starting at `head` in the descriptor table at `desc_table` with `queue_size`
// entries. `indirect_allowed` reflects VIRTIO_F_INDIRECT_DESC. Checks everything listed in the
// file comment; INVALID_ARGUMENT (or OUT_OF_RANGE for addresses) names the offending descriptor.
// Exposed on its own for the fuzzer and for devices that parse chains outside a Queue.
absl::StatusOr<DescriptorChain> ParseChain(const GuestMemory& mem, GuestAddress desc_table,
                                           uint16_t queue_size, uint16_t head,
                                           bool indirect_allowed);

class Queue {
 public:
  explicit Queue(uint16_t max_size);

  // Driver-side configuration, written by the transport while the queue is not ready.
  uint16_t max_size() const { return max_size_; }
  uint16_t size() const { return size_; }
  void set_size(uint16_t size) { size_ = size; }
  bool ready() const { return ready_; }
  void set_ready(bool ready) { ready_ = ready; }
  GuestAddress desc_table() const { return desc_table_; }
  GuestAddress avail_ring() const { return avail_ring_; }
  GuestAddress used_ring() const { return used_ring_; }
  void set_desc_table(GuestAddress a) { desc_table_ = a; }
  void set_avail_ring(GuestAddress a) { avail_ring_ = a; }
  void set_used_ring(GuestAddress a) { used_ring_ = a; }

  // Negotiated features that change ring behaviour; set by the transport at DRIVER_OK.
  void set_event_idx(bool on) { event_idx_ = on; }
  void set_indirect(bool on) { indirect_ = on; }

  // Back to the state after construction (size = max, not ready, addresses 0, indices 0).
  void Reset();

  // Checks the configuration against guest RAM: size a power of two in [1, max], the three rings
  // aligned (16/2/4) and entirely inside guest RAM. Must succeed before Pop/AddUsed are used;
  // the transport calls it when the driver sets DRIVER_OK.
  absl::Status Validate(const GuestMemory& mem) const;

  // The next available chain, nullopt when the driver has posted nothing new, or an error for a
  // malformed ring or chain (the queue should then be considered broken until reset).
  absl::StatusOr<std::optional<DescriptorChain>> Pop(const GuestMemory& mem);

  // Puts (head, written bytes) in the used ring and publishes the new used index (release
  // ordering: the element is visible before the index).
  absl::Status AddUsed(GuestMemory& mem, uint16_t head, uint32_t written);

  // After a batch of AddUsed: whether the driver wants an interrupt (EVENT_IDX used_event, or
  // the avail ring's NO_INTERRUPT flag without EVENT_IDX). Resets the batch.
  absl::StatusOr<bool> NeedsInterrupt(const GuestMemory& mem);

  // With EVENT_IDX: asks the driver to notify once it posts past what we have consumed
  // (writes avail_event). Without EVENT_IDX it does nothing.
  absl::Status RequestNotification(GuestMemory& mem);

  uint16_t next_avail() const { return next_avail_; }
  uint16_t next_used() const { return next_used_; }

 private:
  absl::StatusOr<uint16_t> LoadAvailIdx(const GuestMemory& mem) const;

  const uint16_t max_size_;
  uint16_t size_;
  bool ready_ = false;
  GuestAddress desc_table_, avail_ring_, used_ring_;
  bool event_idx_ = false;
  bool indirect_ = false;
  uint16_t next_avail_ = 0;
  uint16_t next_used_ = 0;
  // Used index when NeedsInterrupt was last asked, for the EVENT_IDX window check.
  uint16_t signalled_used_ = 0;
};

}  // namespace amalgam::virtio

#endif  // AMALGAM_VIRTIO_QUEUE_H_
