#include "virtio/mmio.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "virtio/virtio_ids.h"

namespace amalgam::virtio {
namespace {

uint64_t SetHalf(uint64_t v, bool high, uint32_t half) {
  return high ? (v & 0xffffffffull) | (uint64_t{half} << 32) : (v & ~0xffffffffull) | half;
}

}  // namespace

MmioTransport::MmioTransport(std::unique_ptr<VirtioDevice> device, memory::GuestMemory* mem,
                             InterruptLine* irq)
    : device_(std::move(device)), mem_(mem), irq_(irq) {
  for (uint16_t max : device_->queue_max_sizes()) queues_.emplace_back(max);
}

uint64_t MmioTransport::OfferedFeatures() const {
  return device_->device_features() | FeatureBit(kFeatureVersion1) |
         FeatureBit(kFeatureRingIndirectDesc) | FeatureBit(kFeatureRingEventIdx);
}

uint32_t MmioTransport::status() const {
  absl::MutexLock l(&mu_);
  return status_;
}

uint64_t MmioTransport::device_errors() const { return device_errors_.load(); }

std::vector<DeviceCounter> MmioTransport::Counters() const {
  std::vector<DeviceCounter> out = {
      {"notifications", "queue notifications from the driver (QueueNotify, ioeventfd, backend)",
       notifications_.load(std::memory_order_relaxed)},
      {"interrupts", "used-buffer interrupts raised towards the guest",
       used_interrupts_.load(std::memory_order_relaxed)},
      {"config_interrupts", "configuration-change interrupts (incl. DEVICE_NEEDS_RESET)",
       config_interrupts_.load(std::memory_order_relaxed)},
      {"device_errors", "malformed queues or chains and failed activations (DEVICE_NEEDS_RESET)",
       device_errors_.load(std::memory_order_relaxed)},
  };
  for (DeviceCounter& c : device_->Counters()) out.push_back(std::move(c));
  return out;
}

std::string MmioTransport::last_error() const {
  absl::MutexLock l(&mu_);
  return last_error_;
}

Queue* MmioTransport::SelectedQueue() {
  return queue_sel_ < queues_.size() ? &queues_[queue_sel_] : nullptr;
}

void MmioTransport::Read(uint64_t offset, absl::Span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0);
  absl::MutexLock l(&mu_);
  if (offset >= kRegConfig) {
    device_->ReadConfig(offset - kRegConfig, data);
    return;
  }
  if (data.size() != 4 || offset % 4 != 0) return;
  const uint32_t v = ReadReg(offset);
  memcpy(data.data(), &v, 4);
}

void MmioTransport::Write(uint64_t offset, absl::Span<const uint8_t> data) {
  absl::MutexLock l(&mu_);
  if (offset >= kRegConfig) {
    // Config writes are only meaningful once the driver is set up; the device decides.
    device_->WriteConfig(offset - kRegConfig, data);
    return;
  }
  if (data.size() != 4 || offset % 4 != 0) return;
  uint32_t v;
  memcpy(&v, data.data(), 4);
  WriteReg(offset, v);
}

uint32_t MmioTransport::ReadReg(uint64_t offset) {
  Queue* q = SelectedQueue();
  switch (offset) {
    case kRegMagic:
      return kMmioMagic;
    case kRegVersion:
      return 2;
    case kRegDeviceId:
      return device_->device_id();
    case kRegVendorId:
      return kMmioVendorId;
    case kRegDeviceFeatures:
      return device_features_sel_ < 2
                 ? static_cast<uint32_t>(OfferedFeatures() >> (32 * device_features_sel_))
                 : 0;
    case kRegQueueNumMax:
      return q ? q->max_size() : 0;
    case kRegQueueReady:
      return q && q->ready() ? 1 : 0;
    case kRegInterruptStatus:
      return interrupt_status_;
    case kRegStatus:
      return status_;
    case kRegConfigGeneration:
      return config_generation_;
    default:
      return 0;  // write-only or reserved
  }
}

void MmioTransport::WriteReg(uint64_t offset, uint32_t value) {
  // Queue and feature registers may only change before DRIVER_OK / FEATURES_OK; later writes are
  // driver bugs and are ignored rather than half-applied to a live queue.
  Queue* q = SelectedQueue();
  const bool queue_writable = q != nullptr && !q->ready() && !(status_ & kStatusDriverOk);
  switch (offset) {
    case kRegDeviceFeaturesSel:
      device_features_sel_ = value;
      return;
    case kRegDriverFeatures:
      if (!(status_ & kStatusFeaturesOk) && driver_features_sel_ < 2) {
        driver_features_ = SetHalf(driver_features_, driver_features_sel_ == 1, value);
      }
      return;
    case kRegDriverFeaturesSel:
      driver_features_sel_ = value;
      return;
    case kRegQueueSel:
      queue_sel_ = value;
      return;
    case kRegQueueNum:
      if (queue_writable) q->set_size(static_cast<uint16_t>(value > 0xffff ? 0 : value));
      return;
    case kRegQueueReady:
      if (q == nullptr) return;
      if (value == 0) {
        q->set_ready(false);
        return;
      }
      if (q->ready()) return;
      if (absl::Status s = q->Validate(*mem_); !s.ok()) {
        DeviceError(absl::Status(s.code(), absl::StrCat("queue ", queue_sel_, ": ", s.message())));
        return;
      }
      q->set_ready(true);
      return;
    case kRegQueueNotify:
      NotifyLocked(value);
      return;
    case kRegInterruptAck:
      interrupt_status_ &= ~value;
      return;
    case kRegStatus:
      WriteStatus(value);
      return;
    case kRegQueueDescLow:
    case kRegQueueDescHigh:
      if (queue_writable) {
        q->set_desc_table(
            GuestAddress(SetHalf(q->desc_table().value(), offset == kRegQueueDescHigh, value)));
      }
      return;
    case kRegQueueDriverLow:
    case kRegQueueDriverHigh:
      if (queue_writable) {
        q->set_avail_ring(
            GuestAddress(SetHalf(q->avail_ring().value(), offset == kRegQueueDriverHigh, value)));
      }
      return;
    case kRegQueueDeviceLow:
    case kRegQueueDeviceHigh:
      if (queue_writable) {
        q->set_used_ring(
            GuestAddress(SetHalf(q->used_ring().value(), offset == kRegQueueDeviceHigh, value)));
      }
      return;
    default:
      return;  // read-only or reserved
  }
}

void MmioTransport::WriteStatus(uint32_t value) {
  if (value == 0) {
    ResetLocked();
    return;
  }
  // The driver only ever adds bits (section 3.1.1); a write that clears one is ignored.
  if ((value & status_) != status_) return;
  const uint32_t added = value & ~status_;
  if (added & kStatusFeaturesOk) {
    const uint64_t offered = OfferedFeatures();
    if ((driver_features_ & ~offered) != 0 || !(driver_features_ & FeatureBit(kFeatureVersion1))) {
      // Refuse: the driver reads FEATURES_OK back as clear and gives up (legacy drivers too).
      value &= ~kStatusFeaturesOk;
    }
  }
  if ((added & kStatusDriverOk) && (value & kStatusFeaturesOk)) {
    for (Queue& q : queues_) {
      q.set_event_idx(driver_features_ & FeatureBit(kFeatureRingEventIdx));
      q.set_indirect(driver_features_ & FeatureBit(kFeatureRingIndirectDesc));
    }
    status_ = value;
    if (absl::Status s = device_->Activate(driver_features_); !s.ok()) DeviceError(s);
    return;
  }
  status_ = value;
}

void MmioTransport::ResetLocked() {
  device_->Reset();
  for (Queue& q : queues_) q.Reset();
  status_ = 0;
  device_features_sel_ = driver_features_sel_ = queue_sel_ = 0;
  driver_features_ = 0;
  interrupt_status_ = 0;
}

void MmioTransport::DeviceError(const absl::Status& s) {
  device_errors_.fetch_add(1, std::memory_order_relaxed);
  last_error_ = std::string(s.message());
  status_ |= kStatusDeviceNeedsReset;
  RaiseInterrupt(kInterruptConfigChange);
}

void MmioTransport::RaiseInterrupt(uint32_t cause) {
  interrupt_status_ |= cause;
  (cause == kInterruptUsedRing ? used_interrupts_ : config_interrupts_)
      .fetch_add(1, std::memory_order_relaxed);
  if (irq_ != nullptr) irq_->Trigger();
}

void MmioTransport::HandleNotify(uint32_t index) {
  absl::MutexLock l(&mu_);
  NotifyLocked(index);
}

void MmioTransport::NotifyLocked(uint32_t index) {
  notifications_.fetch_add(1, std::memory_order_relaxed);
  // A driver that skipped FEATURES_OK (legacy) never gets its queues served.
  if (!(status_ & kStatusDriverOk) || !(status_ & kStatusFeaturesOk) ||
      (status_ & kStatusDeviceNeedsReset)) {
    return;
  }
  if (index >= queues_.size() || !queues_[index].ready()) return;
  Queue& q = queues_[index];
  if (absl::Status s = device_->ProcessQueue(index, *mem_, q); !s.ok()) {
    DeviceError(absl::Status(s.code(), absl::StrCat("queue ", index, ": ", s.message())));
    return;
  }
  absl::StatusOr<bool> need = q.NeedsInterrupt(*mem_);
  if (!need.ok()) {
    DeviceError(need.status());
    return;
  }
  if (*need) RaiseInterrupt(kInterruptUsedRing);
}

void MmioTransport::NotifyConfigChange() {
  absl::MutexLock l(&mu_);
  ++config_generation_;
  RaiseInterrupt(kInterruptConfigChange);
}

}  // namespace amalgam::virtio
