#include "vmm/loader/pvh_boot.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "absl/types/span.h"

namespace amalgam::vmm::loader {

absl::Status CheckBootDataClear(const PvhImage& image) {
  for (const ElfSegment& seg : image.segments) {
    if (seg.paddr < kBootDataEnd && seg.paddr + seg.mem_size > kStartInfoAddr) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "segment [%#x, %#x) overlaps the PVH boot data area [%#x, %#x); load the image at or "
          "above 1 MiB",
          seg.paddr, seg.paddr + seg.mem_size, kStartInfoAddr, kBootDataEnd));
    }
  }
  return absl::OkStatus();
}

std::vector<HvmMemmapEntry> BuildMemmap(const memory::GuestMemory& memory) {
  std::vector<HvmMemmapEntry> out;
  auto add = [&out](uint64_t start, uint64_t end, uint32_t type) {
    if (end > start) out.push_back({start, end - start, type, 0});
  };
  for (const memory::GuestRegion& r : memory.regions()) {
    const uint64_t start = r.start().value();
    const uint64_t end = r.end().value();
    if (end <= kLegacyHoleStart || start >= kLegacyHoleEnd) {
      add(start, end, kMemmapRam);
      continue;
    }
    add(start, kLegacyHoleStart, kMemmapRam);
    add(std::max(start, kLegacyHoleStart), std::min(end, kLegacyHoleEnd), kMemmapReserved);
    add(kLegacyHoleEnd, end, kMemmapRam);
  }
  std::sort(out.begin(), out.end(),
            [](const HvmMemmapEntry& a, const HvmMemmapEntry& b) { return a.addr < b.addr; });
  return out;
}

absl::StatusOr<uint64_t> WritePvhBootInfo(memory::GuestMemory& memory, const std::string& cmdline,
                                          const PvhBootExtras& extras) {
  if (cmdline.size() > kCmdlineMax) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--cmdline is %u bytes; the limit is %u", cmdline.size(), kCmdlineMax));
  }
  if (cmdline.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("--cmdline contains a NUL byte");
  }
  if (!memory.IsValidRange(memory::GuestAddress(kStartInfoAddr), kBootDataEnd - kStartInfoAddr)) {
    return absl::FailedPreconditionError(
        "guest RAM does not cover the PVH boot data area [0x6000, 0x8000)");
  }
  std::vector<HvmMemmapEntry> memmap = BuildMemmap(memory);
  if (memmap.size() > kMaxMemmapEntries) {
    return absl::InvalidArgumentError(absl::StrFormat("memory map has %u entries; at most %u fit",
                                                      memmap.size(), kMaxMemmapEntries));
  }

  std::vector<uint8_t> line(cmdline.begin(), cmdline.end());
  line.push_back(0);
  absl::Status s = memory.Write(memory::GuestAddress(kCmdlineAddr), line);
  if (!s.ok()) return s;
  s = memory.Write(memory::GuestAddress(kMemmapAddr),
                   absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(memmap.data()),
                                       memmap.size() * sizeof(HvmMemmapEntry)));
  if (!s.ok()) return s;

  HvmStartInfo info = {};
  info.magic = kHvmStartMagic;
  info.version = 1;
  info.cmdline_paddr = kCmdlineAddr;
  info.rsdp_paddr = extras.rsdp_paddr;
  info.modlist_paddr = extras.modlist_paddr;
  info.nr_modules = extras.nr_modules;
  info.memmap_paddr = kMemmapAddr;
  info.memmap_entries = static_cast<uint32_t>(memmap.size());
  s = memory.WriteObj(memory::GuestAddress(kStartInfoAddr), info);
  if (!s.ok()) return s;
  return kStartInfoAddr;
}

}  // namespace amalgam::vmm::loader
