#include "virtio/net/net_device.h"

#include <cstring>

#include "virtio/chain_io.h"
#include "virtio/drain.h"
#include "virtio/virtio_ids.h"

namespace amalgam::virtio::net {
namespace {
// Frames handled per notification before yielding, so a flood cannot pin the caller.
constexpr int kRxBudget = 256;
}  // namespace

NetDevice::NetDevice(std::unique_ptr<NetBackend> backend, std::array<uint8_t, 6> mac)
    : backend_(std::move(backend)), mac_(mac), rx_frame_(kMaxFrame) {}

uint32_t NetDevice::device_id() const { return kDeviceIdNet; }

uint64_t NetDevice::device_features() const {
  const Offloads o = backend_->supported_offloads();
  uint64_t f = FeatureBit(kFeatureMac);
  // Guest -> host: a tap with a vnet header finishes partial checksums and segments TSO frames.
  if (o.csum)
    f |= FeatureBit(kFeatureCsum) | FeatureBit(kFeatureHostTso4) | FeatureBit(kFeatureHostTso6);
  // Host -> guest: only what the tap can be told to hand over (TUNSETOFFLOAD).
  if (o.csum) f |= FeatureBit(kFeatureGuestCsum);
  if (o.csum && o.tso4) f |= FeatureBit(kFeatureGuestTso4);
  if (o.csum && o.tso6) f |= FeatureBit(kFeatureGuestTso6);
  return f;
}

void NetDevice::ReadConfig(uint64_t offset, absl::Span<uint8_t> data) const {
  for (size_t i = 0; i < data.size(); ++i) {
    data[i] = offset + i < mac_.size() ? mac_[offset + i] : 0;
  }
}

absl::Status NetDevice::Activate(uint64_t features) {
  auto has = [&](int bit) { return (features & FeatureBit(bit)) != 0; };
  if ((has(kFeatureGuestTso4) || has(kFeatureGuestTso6)) && !has(kFeatureGuestCsum)) {
    return absl::InvalidArgumentError("virtio-net: GUEST_TSO without GUEST_CSUM");
  }
  if ((has(kFeatureHostTso4) || has(kFeatureHostTso6)) && !has(kFeatureCsum)) {
    return absl::InvalidArgumentError("virtio-net: HOST_TSO without CSUM");
  }
  Offloads accept;
  accept.csum = has(kFeatureGuestCsum);
  accept.tso4 = has(kFeatureGuestTso4);
  accept.tso6 = has(kFeatureGuestTso6);
  return backend_->SetOffloads(accept);
}

void NetDevice::Reset() {
  rx_len_ = 0;
  (void)backend_->SetOffloads({});
}

std::vector<DeviceCounter> NetDevice::Counters() const {
  return {
      {"rx_frames", "frames delivered to the guest", stats_.rx_frames.load()},
      {"rx_bytes", "bytes delivered to the guest (virtio-net header included)",
       stats_.rx_bytes.load()},
      {"rx_dropped", "received frames dropped (runt, guest buffer too small)",
       stats_.rx_dropped.load()},
      {"tx_frames", "frames the guest sent", stats_.tx_frames.load()},
      {"tx_bytes", "bytes the guest sent (virtio-net header included)", stats_.tx_bytes.load()},
      {"tx_dropped", "frames the guest sent that were dropped (bad size, backend refused)",
       stats_.tx_dropped.load()},
  };
}

absl::Status NetDevice::ProcessQueue(size_t index, memory::GuestMemory& mem, Queue& queue) {
  if (index == 0) return Receive(mem, queue);
  if (index == 1) return Transmit(mem, queue);
  return absl::OkStatus();
}

absl::Status NetDevice::Receive(memory::GuestMemory& mem, Queue& queue) {
  for (int i = 0; i < kRxBudget; ++i) {
    if (rx_len_ == 0) {
      absl::StatusOr<size_t> n = backend_->Receive(absl::MakeSpan(rx_frame_));
      if (!n.ok() || *n == 0) return absl::OkStatus();  // nothing waiting (or a backend hiccup)
      if (*n < kVnetHdrSize) {
        ++stats_.rx_dropped;
        continue;
      }
      rx_len_ = *n;
      // num_buffers (without MRG_RXBUF always 1): the tap leaves those two bytes alone.
      rx_frame_[10] = 1;
      rx_frame_[11] = 0;
    }
    absl::StatusOr<std::optional<DescriptorChain>> chain = queue.Pop(mem);
    if (!chain.ok()) return chain.status();
    if (!chain->has_value()) {
      // No buffer: ask the driver to kick when it posts some; look once more for the race.
      if (absl::Status s = queue.RequestNotification(mem); !s.ok()) return s;
      chain = queue.Pop(mem);
      if (!chain.ok()) return chain.status();
      if (!chain->has_value()) return absl::OkStatus();
    }
    ChainWriter writer(mem, **chain);
    uint32_t written = 0;
    if (writer.remaining() < rx_len_) {
      ++stats_.rx_dropped;  // the guest's buffer is too small for this frame
    } else {
      if (absl::Status s = writer.Write(absl::MakeConstSpan(rx_frame_.data(), rx_len_)); !s.ok()) {
        return s;
      }
      written = writer.written();
      ++stats_.rx_frames;
      stats_.rx_bytes += rx_len_;
    }
    rx_len_ = 0;
    if (absl::Status s = queue.AddUsed(mem, (*chain)->head, written); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status NetDevice::Transmit(memory::GuestMemory& mem, Queue& queue) {
  return DrainQueue(mem, queue, [&](const DescriptorChain& chain) -> absl::StatusOr<uint32_t> {
    if (chain.readable_bytes < kVnetHdrSize || chain.readable_bytes > kMaxFrame) {
      ++stats_.tx_dropped;
      return 0u;
    }
    std::vector<iovec> iov;
    iov.reserve(chain.readable.size());
    ChainReader reader(mem, chain);
    absl::Status s = reader.ForEach(chain.readable_bytes, [&](const uint8_t* p, uint64_t n) {
      iov.push_back({const_cast<uint8_t*>(p), n});
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    if (backend_->Send(iov).ok()) {
      ++stats_.tx_frames;
      stats_.tx_bytes += chain.readable_bytes;
    } else {
      ++stats_.tx_dropped;
    }
    return 0u;
  });
}

}  // namespace amalgam::virtio::net
