// MmioTransport: the virtio-mmio (version 2, virtio 1.x section 4.2) register file of one
// device: magic/version/IDs, feature negotiation (VERSION_1 required, FEATURES_OK refused for
// features that were not offered), the device status state machine (writing 0 resets the
// device and its queues), queue set-up (QueueSel, QueueNumMax/Num/Ready, Desc/Driver/Device
// addresses, all checked against guest RAM when the queue is made ready), QueueNotify,
// InterruptStatus/ACK, ConfigGeneration and the config space at 0x100.
//
// It is not a vcpu::BusDevice (virtio must not depend on vcpu); the VMM adapts Read/Write.
// A queue notification reaches HandleNotify either from a QueueNotify write or, with an
// ioeventfd, from the VMM's event loop. A malformed queue or chain sets DEVICE_NEEDS_RESET,
// raises a config interrupt and stops the device until the driver resets it; nothing aborts.
//
// Ownership: owns the device and its queues; borrows guest memory and the interrupt line,
// which must outlive it. Thread-safety: every public method may be called from any thread
// (one internal mutex, held while the device processes a queue).
#ifndef AMALGAM_VIRTIO_MMIO_H_
#define AMALGAM_VIRTIO_MMIO_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "memory/guest_memory.h"
#include "virtio/device.h"
#include "virtio/queue.h"

namespace amalgam::virtio {

inline constexpr uint64_t kMmioSize = 0x200;           // registers + config space window
inline constexpr uint32_t kMmioMagic = 0x74726976;     // "virt"
inline constexpr uint32_t kMmioVendorId = 0x4c414d41;  // "AMAL"

// Register offsets.
enum MmioReg : uint64_t {
  kRegMagic = 0x000,
  kRegVersion = 0x004,
  kRegDeviceId = 0x008,
  kRegVendorId = 0x00c,
  kRegDeviceFeatures = 0x010,
  kRegDeviceFeaturesSel = 0x014,
  kRegDriverFeatures = 0x020,
  kRegDriverFeaturesSel = 0x024,
  kRegQueueSel = 0x030,
  kRegQueueNumMax = 0x034,
  kRegQueueNum = 0x038,
  kRegQueueReady = 0x044,
  kRegQueueNotify = 0x050,
  kRegInterruptStatus = 0x060,
  kRegInterruptAck = 0x064,
  kRegStatus = 0x070,
  kRegQueueDescLow = 0x080,
  kRegQueueDescHigh = 0x084,
  kRegQueueDriverLow = 0x090,
  kRegQueueDriverHigh = 0x094,
  kRegQueueDeviceLow = 0x0a0,
  kRegQueueDeviceHigh = 0x0a4,
  kRegConfigGeneration = 0x0fc,
  kRegConfig = 0x100,
};

inline constexpr uint32_t kInterruptUsedRing = 1;
inline constexpr uint32_t kInterruptConfigChange = 2;

class MmioTransport {
 public:
  MmioTransport(std::unique_ptr<VirtioDevice> device, memory::GuestMemory* mem, InterruptLine* irq);

  // Guest accesses at `offset` from the device's base. Register accesses must be 4 bytes wide
  // and aligned (others read as zero and are ignored); config space takes any width.
  void Read(uint64_t offset, absl::Span<uint8_t> data);
  void Write(uint64_t offset, absl::Span<const uint8_t> data);

  // A notification for queue `index` (the QueueNotify value), e.g. from an ioeventfd.
  void HandleNotify(uint32_t index);
  // A backend has something for queue `index` (received frame, console input): process it as
  // if the driver had notified.
  void Poke(uint32_t index) { HandleNotify(index); }
  // The device's config space changed: bump ConfigGeneration and raise a config interrupt.
  void NotifyConfigChange();

  uint32_t status() const;
  uint64_t device_errors() const;
  std::string last_error() const;
  // Transport counters ("notifications", "interrupts", "config_interrupts", "device_errors":
  // malformed queues/chains and failed activations, each setting DEVICE_NEEDS_RESET) followed
  // by the device's own. Lock-free (atomics): safe while the guest drives the device.
  std::vector<DeviceCounter> Counters() const;
  VirtioDevice& device() { return *device_; }

 private:
  uint32_t ReadReg(uint64_t offset) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteReg(uint64_t offset, uint32_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteStatus(uint32_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ResetLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DeviceError(const absl::Status& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NotifyLocked(uint32_t index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RaiseInterrupt(uint32_t cause) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Queue* SelectedQueue() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint64_t OfferedFeatures() const;

  const std::unique_ptr<VirtioDevice> device_;
  memory::GuestMemory* const mem_;
  InterruptLine* const irq_;

  mutable absl::Mutex mu_;
  std::vector<Queue> queues_ ABSL_GUARDED_BY(mu_);
  uint32_t status_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t device_features_sel_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t driver_features_sel_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t driver_features_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t queue_sel_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t interrupt_status_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t config_generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_error_ ABSL_GUARDED_BY(mu_);
  // Counters for metrics, readable without mu_.
  std::atomic<uint64_t> notifications_{0};
  std::atomic<uint64_t> used_interrupts_{0};
  std::atomic<uint64_t> config_interrupts_{0};
  std::atomic<uint64_t> device_errors_{0};
};

}  // namespace amalgam::virtio

#endif  // AMALGAM_VIRTIO_MMIO_H_
