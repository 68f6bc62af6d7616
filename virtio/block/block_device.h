// BlockDevice: virtio-blk (device ID 2) over a BlockBackend. One request queue. Requests: IN,
// OUT, FLUSH (backend Flush = fdatasync), GET_ID, DISCARD (when the backend supports it).
// A read-only backend offers VIRTIO_BLK_F_RO and answers writes/discards with IOERR. Sector
// ranges are checked against the capacity (with overflow checks) and answered IOERR; a chain
// that has no room for the status byte or no complete header is a device error (there is no
// way to tell the guest otherwise). Data moves between guest RAM and the backend without a
// bounce buffer.
// Ownership: owns the backend. Thread-safety: called only by its transport (serialized).
#ifndef AMALGAM_VIRTIO_BLOCK_BLOCK_DEVICE_H_
#define AMALGAM_VIRTIO_BLOCK_BLOCK_DEVICE_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "virtio/block/block_backend.h"
#include "virtio/chain_io.h"
#include "virtio/device.h"

namespace amalgam::virtio::block {

inline constexpr uint32_t kSectorSize = 512;
// Request types and status values (virtio 1.x section 5.2.6).
inline constexpr uint32_t kReqIn = 0;
inline constexpr uint32_t kReqOut = 1;
inline constexpr uint32_t kReqFlush = 4;
inline constexpr uint32_t kReqGetId = 8;
inline constexpr uint32_t kReqDiscard = 11;
inline constexpr uint8_t kStatusOk = 0;
inline constexpr uint8_t kStatusIoErr = 1;
inline constexpr uint8_t kStatusUnsupported = 2;
// Feature bits.
inline constexpr int kFeatureSegMax = 2;
inline constexpr int kFeatureRo = 5;
inline constexpr int kFeatureFlush = 9;
inline constexpr int kFeatureDiscard = 13;
inline constexpr uint16_t kQueueSize = 256;
inline constexpr uint32_t kMaxDiscardSegments = 16;
inline constexpr uint32_t kIdBytes = 20;

struct RequestHeader {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};
static_assert(sizeof(RequestHeader) == 16);

struct DiscardSegment {
  uint64_t sector;
  uint32_t num_sectors;
  uint32_t flags;
};
static_assert(sizeof(DiscardSegment) == 16);

// Atomics: the transport serializes the writers, metrics threads read them concurrently.
struct BlockStats {
  std::atomic<uint64_t> requests{0};  // chains handled (any type, any status)
  std::atomic<uint64_t> reads{0}, writes{0}, flushes{0}, discards{0}, io_errors{0};
  std::atomic<uint64_t> bytes_read{0}, bytes_written{0};
};

class BlockDevice : public VirtioDevice {
 public:
  explicit BlockDevice(std::unique_ptr<BlockBackend> backend);

  uint32_t device_id() const override;
  uint64_t device_features() const override;
  std::vector<uint16_t> queue_max_sizes() const override { return {kQueueSize}; }
  void ReadConfig(uint64_t offset, absl::Span<uint8_t> data) const override;
  absl::Status ProcessQueue(size_t index, memory::GuestMemory& mem, Queue& queue) override;

  // Handles one request chain; returns the bytes written into it (data + status) or a device
  // error. Public for the request fuzzer.
  absl::StatusOr<uint32_t> HandleRequest(memory::GuestMemory& mem, const DescriptorChain& chain);
  const BlockStats& stats() const { return stats_; }
  std::vector<DeviceCounter> Counters() const override;

 private:
  uint8_t Execute(memory::GuestMemory& mem, const DescriptorChain& chain,
                  const RequestHeader& header, uint64_t in_len, ChainWriter& writer);
  bool InRange(uint64_t sector, uint64_t bytes) const;

  std::unique_ptr<BlockBackend> backend_;
  uint64_t capacity_sectors_;
  uint8_t config_[60] = {};
  BlockStats stats_;
};

}  // namespace amalgam::virtio::block

#endif  // AMALGAM_VIRTIO_BLOCK_BLOCK_DEVICE_H_
