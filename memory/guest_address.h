// GuestAddress: a guest-physical address (GPA), kept distinct from host pointers and sizes.
// Thread-safety: a value type. Arithmetic that could wrap is explicit (CheckedAdd).
#ifndef AMALGAM_MEMORY_GUEST_ADDRESS_H_
#define AMALGAM_MEMORY_GUEST_ADDRESS_H_

#include <cstdint>
#include <optional>

namespace amalgam::memory {

class GuestAddress {
 public:
  constexpr GuestAddress() = default;
  constexpr explicit GuestAddress(uint64_t value) : value_(value) {}

  constexpr uint64_t value() const { return value_; }

  // this + offset, or nullopt if that wraps past 2^64.
  constexpr std::optional<GuestAddress> CheckedAdd(uint64_t offset) const {
    if (offset > UINT64_MAX - value_) return std::nullopt;
    return GuestAddress(value_ + offset);
  }
  // Wrapping add, for callers that already proved the result is in range.
  constexpr GuestAddress UncheckedAdd(uint64_t offset) const {
    return GuestAddress(value_ + offset);
  }
  constexpr GuestAddress AlignDown(uint64_t align) const {
    return GuestAddress(value_ & ~(align - 1));
  }

  friend constexpr bool operator==(GuestAddress a, GuestAddress b) { return a.value_ == b.value_; }
  friend constexpr bool operator!=(GuestAddress a, GuestAddress b) { return a.value_ != b.value_; }
  friend constexpr bool operator<(GuestAddress a, GuestAddress b) { return a.value_ < b.value_; }
  friend constexpr bool operator<=(GuestAddress a, GuestAddress b) { return a.value_ <= b.value_; }
  friend constexpr bool operator>(GuestAddress a, GuestAddress b) { return a.value_ > b.value_; }
  friend constexpr bool operator>=(GuestAddress a, GuestAddress b) { return a.value_ >= b.value_; }

 private:
  uint64_t value_ = 0;
};

inline constexpr uint64_t kPageSize = 4096;

}  // namespace amalgam::memory

#endif  // AMALGAM_MEMORY_GUEST_ADDRESS_H_
