#include "virtio/drain.h"

namespace amalgam::virtio {

absl::Status DrainQueue(
    memory::GuestMemory& mem, Queue& queue,
    absl::FunctionRef<absl::StatusOr<uint32_t>(const DescriptorChain&)> handle) {
  // At most one pass over the ring per armed re-check; a driver that keeps posting is served
  // on its next notification instead of starving the caller forever.
  for (uint32_t budget = 2u * queue.size() + 2; budget > 0; --budget) {
    absl::StatusOr<std::optional<DescriptorChain>> chain = queue.Pop(mem);
    if (!chain.ok()) return chain.status();
    if (!chain->has_value()) {
      if (absl::Status s = queue.RequestNotification(mem); !s.ok()) return s;
      chain = queue.Pop(mem);
      if (!chain.ok()) return chain.status();
      if (!chain->has_value()) return absl::OkStatus();
    }
    absl::StatusOr<uint32_t> written = handle(**chain);
    if (!written.ok()) return written.status();
    if (absl::Status s = queue.AddUsed(mem, (*chain)->head, *written); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace amalgam::virtio
