// The guest's physical memory map (E820): RAM from the GuestMemory regions, minus reserved
// carve-outs (by default the legacy hole [0x9FC00, 1 MiB) with the EBDA, VGA window, option ROMs
// and the BIOS area that holds the ACPI tables), which are reported as reserved.
// Thread-safety: pure functions over an immutable GuestMemory layout.
#ifndef AMALGAM_VMM_LINUX_E820_H_
#define AMALGAM_VMM_LINUX_E820_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "memory/guest_memory.h"

namespace amalgam::vmm::linux_boot {

enum class E820Type : uint32_t { kRam = 1, kReserved = 2, kAcpi = 3, kNvs = 4, kUnusable = 5 };

struct E820Entry {
  uint64_t addr = 0;
  uint64_t size = 0;
  E820Type type = E820Type::kRam;
  uint64_t end() const { return addr + size; }
  friend bool operator==(const E820Entry& a, const E820Entry& b) {
    return a.addr == b.addr && a.size == b.size && a.type == b.type;
  }
};

inline constexpr uint64_t kLegacyHoleStart = 0x9fc00;
inline constexpr uint64_t kLegacyHoleEnd = 0x100000;
// boot_params holds at most this many entries.
inline constexpr size_t kMaxE820Entries = 128;

// The legacy hole as a reserved carve-out.
std::vector<E820Entry> DefaultCarveOuts();

// RAM pieces (regions minus carve-outs) and the carve-outs themselves, sorted by address, with
// adjacent entries of one type merged. INVALID_ARGUMENT if a carve-out wraps or overlaps another
// or if the map needs more than kMaxE820Entries entries.
absl::StatusOr<std::vector<E820Entry>> BuildE820(const memory::GuestMemory& memory,
                                                 absl::Span<const E820Entry> carve_outs);

// Only the RAM entries of BuildE820 (what loaders may place data in).
absl::StatusOr<std::vector<E820Entry>> UsableRam(const memory::GuestMemory& memory,
                                                 absl::Span<const E820Entry> carve_outs);

}  // namespace amalgam::vmm::linux_boot

#endif  // AMALGAM_VMM_LINUX_E820_H_
