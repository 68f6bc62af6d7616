// VirtioDevice: what a device type (block, rng, console, net) implements, independent of the
// transport; InterruptLine: how the transport raises the device's interrupt.
// Ownership: the transport owns its device. Thread-safety: the transport serializes every call
// into a device (one mutex per transport), so devices need no locking of their own unless
// their backends call back from other threads.
#ifndef AMALGAM_VIRTIO_DEVICE_H_
#define AMALGAM_VIRTIO_DEVICE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "memory/guest_memory.h"
#include "virtio/queue.h"

namespace amalgam::virtio {

// One edge towards the guest's interrupt controller (an irqfd in amalgam, a counter in tests).
// Implementations must be callable from any thread.
class InterruptLine {
 public:
  virtual ~InterruptLine() = default;
  virtual void Trigger() = 0;
};

// One named counter of a device, for metrics: `name` is a snake_case noun ("requests",
// "read_bytes"), `help` one line. Values only grow.
struct DeviceCounter {
  std::string name;
  std::string help;
  uint64_t value = 0;
};

// The value of the counter called `name`, or nullopt.
inline std::optional<uint64_t> FindCounter(const std::vector<DeviceCounter>& counters,
                                           const std::string& name) {
  for (const DeviceCounter& c : counters) {
    if (c.name == name) return c.value;
  }
  return std::nullopt;
}

class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;
  virtual uint32_t device_id() const = 0;
  // Device-specific feature bits offered to the driver. The transport adds VERSION_1,
  // INDIRECT_DESC and EVENT_IDX itself.
  virtual uint64_t device_features() const = 0;
  // One entry per virtqueue: its maximum size (a power of two).
  virtual std::vector<uint16_t> queue_max_sizes() const = 0;
  // Device configuration space. Reads past its end return zeros.
  virtual void ReadConfig(uint64_t offset, absl::Span<uint8_t> data) const = 0;
  virtual void WriteConfig(uint64_t offset, absl::Span<const uint8_t> data) {}
  // DRIVER_OK: the driver accepted `features` (all offered ones it wants, transport bits too).
  virtual absl::Status Activate(uint64_t features) { return absl::OkStatus(); }
  // The driver (or a backend, via MmioTransport::Poke) says queue `index` has work. Process
  // what is available, putting finished chains in the used ring. An error (malformed chain,
  // backend failure the guest cannot be told about) becomes DEVICE_NEEDS_RESET.
  virtual absl::Status ProcessQueue(size_t index, memory::GuestMemory& mem, Queue& queue) = 0;
  // Device reset by the driver (status 0): forget negotiated state.
  virtual void Reset() {}
  // The device's own counters (requests, bytes, errors). Unlike the calls above this one is
  // NOT serialized by the transport: metrics threads call it while queues are processed, so
  // implementations read atomics only.
  virtual std::vector<DeviceCounter> Counters() const { return {}; }
};

}  // namespace amalgam::virtio

#endif  // AMALGAM_VIRTIO_DEVICE_H_
