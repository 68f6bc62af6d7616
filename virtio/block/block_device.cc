#include "virtio/block/block_device.h"

#include <cstring>

#include "virtio/chain_io.h"
#include "virtio/drain.h"
#include "virtio/virtio_ids.h"

namespace amalgam::virtio::block {
namespace {

template <typename T>
void Put(uint8_t* config, size_t offset, T value) {
  memcpy(config + offset, &value, sizeof(T));
}

}  // namespace

BlockDevice::BlockDevice(std::unique_ptr<BlockBackend> backend)
    : backend_(std::move(backend)), capacity_sectors_(backend_->size_bytes() / kSectorSize) {
  // struct virtio_blk_config (little-endian): capacity, size_max, seg_max, geometry, blk_size,
  // topology, writeback, num_queues, then the discard limits.
  Put<uint64_t>(config_, 0, capacity_sectors_);
  Put<uint32_t>(config_, 12, kQueueSize - 2);  // seg_max: data segments besides header+status
  Put<uint32_t>(config_, 20, kSectorSize);
  Put<uint16_t>(config_, 34, 1);
  Put<uint32_t>(config_, 36, 1u << 22);  // max_discard_sectors: 2 GiB per segment
  Put<uint32_t>(config_, 40, kMaxDiscardSegments);
  Put<uint32_t>(config_, 44, 8);  // discard_sector_alignment: 4 KiB, the host's hole size
}

uint32_t BlockDevice::device_id() const { return kDeviceIdBlock; }

uint64_t BlockDevice::device_features() const {
  uint64_t f = FeatureBit(kFeatureSegMax) | FeatureBit(kFeatureFlush);
  if (backend_->read_only()) f |= FeatureBit(kFeatureRo);
  if (backend_->supports_discard()) f |= FeatureBit(kFeatureDiscard);
  return f;
}

void BlockDevice::ReadConfig(uint64_t offset, absl::Span<uint8_t> data) const {
  for (size_t i = 0; i < data.size(); ++i) {
    data[i] = offset + i < sizeof(config_) ? config_[offset + i] : 0;
  }
}

absl::Status BlockDevice::ProcessQueue(size_t index, memory::GuestMemory& mem, Queue& queue) {
  if (index != 0) return absl::OkStatus();
  return DrainQueue(mem, queue,
                    [&](const DescriptorChain& chain) { return HandleRequest(mem, chain); });
}

bool BlockDevice::InRange(uint64_t sector, uint64_t bytes) const {
  if (bytes % kSectorSize != 0) return false;
  const uint64_t sectors = bytes / kSectorSize;
  return sector <= capacity_sectors_ && sectors <= capacity_sectors_ - sector;
}

absl::StatusOr<uint32_t> BlockDevice::HandleRequest(memory::GuestMemory& mem,
                                                    const DescriptorChain& chain) {
  if (chain.writable_bytes == 0) {
    return absl::InvalidArgumentError(
        "virtio-blk request has no device-writable byte for its status");
  }
  ChainReader reader(mem, chain);
  RequestHeader header;
  if (absl::Status s = reader.ReadObj(&header); !s.ok()) {
    return absl::InvalidArgumentError("virtio-blk request header shorter than 16 bytes");
  }
  ++stats_.requests;
  ChainWriter writer(mem, chain);
  // The status byte is the last writable byte; everything writable before it is data.
  const uint64_t in_len = chain.writable_bytes - 1;
  const uint8_t status = Execute(mem, chain, header, in_len, writer);
  if (status != kStatusOk) ++stats_.io_errors;
  // Skip whatever data space is left (e.g. an IOERR read) and write the status at the end.
  if (writer.remaining() > 1) {
    absl::Status s =
        writer.ForEach(writer.remaining() - 1, [](uint8_t*, uint64_t) { return absl::OkStatus(); });
    if (!s.ok()) return s;
  }
  if (absl::Status s = writer.Write(absl::MakeConstSpan(&status, 1)); !s.ok()) return s;
  return writer.written();
}

std::vector<DeviceCounter> BlockDevice::Counters() const {
  return {
      {"requests", "requests handled, any type and status", stats_.requests.load()},
      {"read_requests", "successful reads", stats_.reads.load()},
      {"write_requests", "successful writes", stats_.writes.load()},
      {"flush_requests", "flushes", stats_.flushes.load()},
      {"discard_requests", "successful discards", stats_.discards.load()},
      {"request_errors", "requests answered IOERR or UNSUPP", stats_.io_errors.load()},
      {"read_bytes", "bytes read from the backing file into the guest", stats_.bytes_read.load()},
      {"written_bytes", "bytes written from the guest to the backing file",
       stats_.bytes_written.load()},
  };
}

uint8_t BlockDevice::Execute(memory::GuestMemory& mem, const DescriptorChain& chain,
                             const RequestHeader& header, uint64_t in_len, ChainWriter& writer) {
  // Data the guest sends follows the header in the readable part.
  const uint64_t out_len = chain.readable_bytes - sizeof(RequestHeader);
  switch (header.type) {
    case kReqIn: {
      if (!InRange(header.sector, in_len)) return kStatusIoErr;
      uint64_t offset = header.sector * kSectorSize;
      absl::Status s = writer.ForEach(in_len, [&](uint8_t* p, uint64_t n) {
        absl::Status r = backend_->ReadAt(offset, absl::MakeSpan(p, n));
        offset += n;
        return r;
      });
      if (!s.ok()) return kStatusIoErr;
      ++stats_.reads;
      stats_.bytes_read += in_len;
      return kStatusOk;
    }
    case kReqOut: {
      if (backend_->read_only() || !InRange(header.sector, out_len)) return kStatusIoErr;
      ChainReader data(mem, chain);
      RequestHeader skip;
      if (!data.ReadObj(&skip).ok()) return kStatusIoErr;
      uint64_t offset = header.sector * kSectorSize;
      absl::Status s = data.ForEach(out_len, [&](const uint8_t* p, uint64_t n) {
        absl::Status r = backend_->WriteAt(offset, absl::MakeConstSpan(p, n));
        offset += n;
        return r;
      });
      if (!s.ok()) return kStatusIoErr;
      ++stats_.writes;
      stats_.bytes_written += out_len;
      return kStatusOk;
    }
    case kReqFlush:
      ++stats_.flushes;
      return backend_->Flush().ok() ? kStatusOk : kStatusIoErr;
    case kReqGetId: {
      uint8_t id[kIdBytes] = {};
      const std::string s = backend_->id();
      memcpy(id, s.data(), std::min<size_t>(s.size(), kIdBytes));
      if (in_len < kIdBytes) return kStatusIoErr;
      return writer.Write(absl::MakeConstSpan(id, kIdBytes)).ok() ? kStatusOk : kStatusIoErr;
    }
    case kReqDiscard: {
      if (!backend_->supports_discard()) return kStatusUnsupported;
      if (out_len == 0 || out_len % sizeof(DiscardSegment) != 0 ||
          out_len / sizeof(DiscardSegment) > kMaxDiscardSegments) {
        return kStatusIoErr;
      }
      ChainReader data(mem, chain);
      RequestHeader skip;
      if (!data.ReadObj(&skip).ok()) return kStatusIoErr;
      for (uint64_t i = 0; i < out_len / sizeof(DiscardSegment); ++i) {
        DiscardSegment seg;
        if (!data.ReadObj(&seg).ok()) return kStatusIoErr;
        if (seg.flags != 0) return kStatusUnsupported;  // "unmap" is for WRITE_ZEROES only
        const uint64_t bytes = uint64_t{seg.num_sectors} * kSectorSize;
        if (!InRange(seg.sector, bytes)) return kStatusIoErr;
        if (!backend_->Discard(seg.sector * kSectorSize, bytes).ok()) return kStatusIoErr;
      }
      ++stats_.discards;
      return kStatusOk;
    }
    default:
      return kStatusUnsupported;
  }
}

}  // namespace amalgam::virtio::block
