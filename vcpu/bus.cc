#include "vcpu/bus.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_format.h"

namespace amalgam::vcpu {

absl::Status Bus::Insert(std::shared_ptr<BusDevice> device, uint64_t base, uint64_t len) {
  if (device == nullptr) return absl::InvalidArgumentError("bus: null device");
  if (len == 0 || base + len < base) {
    return absl::InvalidArgumentError(
        absl::StrFormat("bus: bad range base=%#x len=%#x", base, len));
  }
  absl::MutexLock lock(&mu_);
  auto next = devices_.lower_bound(base);
  if (next != devices_.end() && next->first < base + len) {
    return absl::AlreadyExistsError(
        absl::StrFormat("bus: [%#x, %#x) overlaps a device at %#x", base, base + len, next->first));
  }
  if (next != devices_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second.len > base) {
      return absl::AlreadyExistsError(absl::StrFormat("bus: [%#x, %#x) overlaps a device at %#x",
                                                      base, base + len, prev->first));
    }
  }
  devices_.emplace(base, Entry{len, std::move(device)});
  return absl::OkStatus();
}

absl::Status Bus::Remove(uint64_t base) {
  absl::MutexLock lock(&mu_);
  if (devices_.erase(base) == 0) {
    return absl::NotFoundError(absl::StrFormat("bus: no device at %#x", base));
  }
  return absl::OkStatus();
}

std::shared_ptr<BusDevice> Bus::Find(uint64_t addr, uint64_t* base) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = devices_.upper_bound(addr);
  if (it == devices_.begin()) return nullptr;
  --it;
  if (addr - it->first >= it->second.len) return nullptr;
  *base = it->first;
  return it->second.device;
}

bool Bus::Read(uint64_t addr, absl::Span<uint8_t> data) const {
  uint64_t base = 0;
  std::shared_ptr<BusDevice> dev = Find(addr, &base);
  if (dev == nullptr) {
    std::memset(data.data(), 0xff, data.size());
    return false;
  }
  dev->Read(addr - base, data);
  return true;
}

bool Bus::Write(uint64_t addr, absl::Span<const uint8_t> data) const {
  uint64_t base = 0;
  std::shared_ptr<BusDevice> dev = Find(addr, &base);
  if (dev == nullptr) return false;
  dev->Write(addr - base, data);
  return true;
}

}  // namespace amalgam::vcpu
