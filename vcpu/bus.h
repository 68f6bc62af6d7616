// Bus: routes guest port-I/O or MMIO accesses to the device registered at that address.
//
// Ownership: the bus shares ownership of its devices. Thread-safety: Insert/Remove and Dispatch
// may be called from any thread (a reader lock on the hot path); a device's Read/Write may be
// called concurrently from several vCPU threads, so devices lock their own state.
#ifndef AMALGAM_VCPU_BUS_H_
#define AMALGAM_VCPU_BUS_H_

#include <cstdint>
#include <map>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"

namespace amalgam::vcpu {

// A device on a bus. `offset` is relative to the base the device was inserted at.
class BusDevice {
 public:
  virtual ~BusDevice() = default;
  // Fill `data` (1, 2, 4 or 8 bytes) with the value read at offset.
  virtual void Read(uint64_t offset, absl::Span<uint8_t> data) = 0;
  virtual void Write(uint64_t offset, absl::Span<const uint8_t> data) = 0;
};

class Bus {
 public:
  // ALREADY_EXISTS if [base, base + len) overlaps a registered range; INVALID_ARGUMENT if empty
  // or wrapping.
  absl::Status Insert(std::shared_ptr<BusDevice> device, uint64_t base, uint64_t len);
  absl::Status Remove(uint64_t base);

  // Route an access. Returns false when no device claims addr (reads then see all ones).
  bool Read(uint64_t addr, absl::Span<uint8_t> data) const;
  bool Write(uint64_t addr, absl::Span<const uint8_t> data) const;

 private:
  struct Entry {
    uint64_t len;
    std::shared_ptr<BusDevice> device;
  };
  // The device covering addr and its base, or nullptr.
  std::shared_ptr<BusDevice> Find(uint64_t addr, uint64_t* base) const;

  mutable absl::Mutex mu_;
  std::map<uint64_t, Entry> devices_ ABSL_GUARDED_BY(mu_);  // keyed by base
};

}  // namespace amalgam::vcpu

#endif  // AMALGAM_VCPU_BUS_H_
