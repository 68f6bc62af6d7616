#include "virtio/console/console_device.h"

#include <algorithm>
#include <vector>

#include "virtio/chain_io.h"
#include "virtio/drain.h"
#include "virtio/virtio_ids.h"

namespace amalgam::virtio::console {
namespace {
// Output is copied through a bounded buffer, so a huge guest buffer costs bounded host memory.
constexpr size_t kChunk = 4096;
}  // namespace

uint32_t ConsoleDevice::device_id() const { return kDeviceIdConsole; }

size_t ConsoleDevice::QueueInput(absl::Span<const uint8_t> bytes) {
  absl::MutexLock l(&mu_);
  const size_t n = std::min(bytes.size(), kMaxPendingInput - input_.size());
  input_.insert(input_.end(), bytes.begin(), bytes.begin() + n);
  input_dropped_ += bytes.size() - n;
  return n;
}

std::vector<DeviceCounter> ConsoleDevice::Counters() const {
  return {
      {"output_bytes", "bytes the guest wrote to the console", bytes_out_.load()},
      {"input_bytes", "host input bytes delivered to the guest", bytes_in_.load()},
      {"input_dropped_bytes", "host input bytes dropped (guest not reading)",
       input_dropped_.load()},
  };
}

absl::Status ConsoleDevice::ProcessQueue(size_t index, memory::GuestMemory& mem, Queue& queue) {
  if (index == 1) {
    return DrainQueue(mem, queue, [&](const DescriptorChain& chain) -> absl::StatusOr<uint32_t> {
      ChainReader reader(mem, chain);
      std::vector<uint8_t> buf;
      while (reader.remaining() > 0) {
        buf.resize(std::min<uint64_t>(reader.remaining(), kChunk));
        if (absl::Status s = reader.Read(absl::MakeSpan(buf)); !s.ok()) return s;
        if (sink_) sink_->Write(buf);
        bytes_out_ += buf.size();
      }
      return 0u;
    });
  }
  if (index != 0) return absl::OkStatus();
  // Receive: only take a guest buffer when there is input to put in it.
  while (true) {
    absl::MutexLock l(&mu_);
    if (input_.empty()) return queue.RequestNotification(mem);
    absl::StatusOr<std::optional<DescriptorChain>> chain = queue.Pop(mem);
    if (!chain.ok()) return chain.status();
    if (!chain->has_value()) return queue.RequestNotification(mem);
    ChainWriter writer(mem, **chain);
    const size_t n = std::min<uint64_t>(writer.remaining(), input_.size());
    std::vector<uint8_t> bytes(input_.begin(), input_.begin() + n);
    if (absl::Status s = writer.Write(bytes); !s.ok()) return s;
    input_.erase(input_.begin(), input_.begin() + n);
    bytes_in_ += n;
    if (absl::Status s = queue.AddUsed(mem, (*chain)->head, writer.written()); !s.ok()) return s;
  }
}

}  // namespace amalgam::virtio::console
