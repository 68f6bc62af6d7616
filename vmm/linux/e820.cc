#include "vmm/linux/e820.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace amalgam::vmm::linux_boot {

std::vector<E820Entry> DefaultCarveOuts() {
  return {{kLegacyHoleStart, kLegacyHoleEnd - kLegacyHoleStart, E820Type::kReserved}};
}

absl::StatusOr<std::vector<E820Entry>> BuildE820(const memory::GuestMemory& memory,
                                                 absl::Span<const E820Entry> carve_outs) {
  std::vector<E820Entry> holes(carve_outs.begin(), carve_outs.end());
  std::sort(holes.begin(), holes.end(),
            [](const E820Entry& a, const E820Entry& b) { return a.addr < b.addr; });
  for (size_t i = 0; i < holes.size(); ++i) {
    if (holes[i].size == 0 || holes[i].addr + holes[i].size < holes[i].addr) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "e820: carve-out at 0x%x size 0x%x is empty or wraps", holes[i].addr, holes[i].size));
    }
    if (i > 0 && holes[i].addr < holes[i - 1].end()) {
      return absl::InvalidArgumentError(absl::StrFormat("e820: carve-outs at 0x%x and 0x%x overlap",
                                                        holes[i - 1].addr, holes[i].addr));
    }
  }
  std::vector<E820Entry> map;
  for (const memory::GuestRegion& region : memory.regions()) {
    uint64_t cursor = region.start().value();
    uint64_t end = region.end().value();
    for (const E820Entry& hole : holes) {
      if (hole.end() <= cursor || hole.addr >= end) continue;
      if (hole.addr > cursor) map.push_back({cursor, hole.addr - cursor, E820Type::kRam});
      cursor = std::max(cursor, hole.end());
      if (cursor >= end) break;
    }
    if (cursor < end) map.push_back({cursor, end - cursor, E820Type::kRam});
  }
  map.insert(map.end(), holes.begin(), holes.end());
  std::sort(map.begin(), map.end(),
            [](const E820Entry& a, const E820Entry& b) { return a.addr < b.addr; });
  std::vector<E820Entry> merged;
  for (const E820Entry& e : map) {
    if (!merged.empty() && merged.back().type == e.type && merged.back().end() == e.addr) {
      merged.back().size += e.size;
    } else {
      merged.push_back(e);
    }
  }
  if (merged.size() > kMaxE820Entries) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "e820: the memory map needs %d entries; boot_params holds at most %d (use fewer guest "
        "memory regions or carve-outs)",
        merged.size(), kMaxE820Entries));
  }
  return merged;
}

absl::StatusOr<std::vector<E820Entry>> UsableRam(const memory::GuestMemory& memory,
                                                 absl::Span<const E820Entry> carve_outs) {
  absl::StatusOr<std::vector<E820Entry>> map = BuildE820(memory, carve_outs);
  if (!map.ok()) return map.status();
  std::vector<E820Entry> ram;
  for (const E820Entry& e : *map) {
    if (e.type == E820Type::kRam) ram.push_back(e);
  }
  return ram;
}

}  // namespace amalgam::vmm::linux_boot
