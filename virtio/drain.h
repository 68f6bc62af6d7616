// DrainQueue: the loop every request/response device runs on a notification: pop each
// available chain, hand it to the device, put the result in the used ring; with EVENT_IDX,
// re-arm avail_event and look once more so a chain posted meanwhile is not missed.
// Thread-safety: as Queue (the caller serializes).
#ifndef AMALGAM_VIRTIO_DRAIN_H_
#define AMALGAM_VIRTIO_DRAIN_H_

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "virtio/queue.h"

namespace amalgam::virtio {

// `handle` returns the number of bytes it wrote into the chain, or an error that stops the
// queue (a device error). Returns the first error.
absl::Status DrainQueue(memory::GuestMemory& mem, Queue& queue,
                        absl::FunctionRef<absl::StatusOr<uint32_t>(const DescriptorChain&)> handle);

}  // namespace amalgam::virtio

#endif  // AMALGAM_VIRTIO_DRAIN_H_
