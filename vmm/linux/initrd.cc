#include "vmm/linux/initrd.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "memory/guest_address.h"

namespace amalgam::vmm::linux_boot {

absl::StatusOr<uint64_t> PlaceInitrd(absl::Span<const E820Entry> ram, uint64_t size,
                                     const InitrdLimits& limits) {
  if (size == 0) return absl::InvalidArgumentError("initrd is empty");
  uint64_t largest = 0;
  uint64_t best = 0;
  bool found = false;
  for (const E820Entry& e : ram) {
    if (e.type != E820Type::kRam) continue;
    uint64_t lo = std::max(e.addr, limits.min_addr);
    uint64_t hi = std::min(e.end(), limits.max_end);
    if (hi <= lo) continue;
    // Round the start up to a page: the usable span for an aligned placement.
    uint64_t lo_aligned = (lo + memory::kPageSize - 1) & ~(memory::kPageSize - 1);
    if (lo_aligned < lo || lo_aligned >= hi) continue;
    largest = std::max(largest, hi - lo_aligned);
    if (hi - lo_aligned < size) continue;
    uint64_t addr = (hi - size) & ~(memory::kPageSize - 1);
    if (!found || addr > best) {
      best = addr;
      found = true;
    }
  }
  if (!found) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "initrd is %d bytes but the largest free RAM range in [0x%x, 0x%x) is %d bytes; give "
        "the guest more memory or use a smaller initrd",
        size, limits.min_addr, limits.max_end, largest));
  }
  return best;
}

}  // namespace amalgam::vmm::linux_boot
