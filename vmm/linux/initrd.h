// Where an initrd goes in guest RAM: as high as allowed (so it stays clear of the kernel's
// decompression and early allocations), page aligned, inside one RAM entry of the E820 map,
// above the kernel and below the boot protocol's limit.
// Thread-safety: pure functions.
#ifndef AMALGAM_VMM_LINUX_INITRD_H_
#define AMALGAM_VMM_LINUX_INITRD_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "vmm/linux/e820.h"

namespace amalgam::vmm::linux_boot {

struct InitrdLimits {
  uint64_t min_addr = 0;  // first allowed byte (the end of the kernel's init_size window)
  uint64_t max_end = 0;   // one past the last allowed byte (initrd_addr_max + 1)
};

// The highest page-aligned address A with [A, A + size) inside one RAM entry of `ram` and inside
// [min_addr, max_end). INVALID_ARGUMENT when size is 0 or nothing fits ("initrd is N bytes but
// the largest free range ... is M; give the guest more memory or use a smaller initrd").
absl::StatusOr<uint64_t> PlaceInitrd(absl::Span<const E820Entry> ram, uint64_t size,
                                     const InitrdLimits& limits);

}  // namespace amalgam::vmm::linux_boot

#endif  // AMALGAM_VMM_LINUX_INITRD_H_
