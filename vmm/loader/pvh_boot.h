// PVH boot information: the hvm_start_info block, its memory map (the E820 equivalent, derived
// from the GuestMemory regions) and the kernel command line, written into low guest RAM.
// Thread-safety: pure functions; WritePvhBootInfo writes guest memory (no vCPU may run).
#ifndef AMALGAM_VMM_LOADER_PVH_BOOT_H_
#define AMALGAM_VMM_LOADER_PVH_BOOT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "memory/guest_memory.h"
#include "vmm/loader/pvh_elf.h"

namespace amalgam::vmm::loader {

// The Xen PVH ABI structures (xen/include/public/arch-x86/hvm/start_info.h), version 1.
inline constexpr uint32_t kHvmStartMagic = 0x336ec578;

struct HvmStartInfo {
  uint32_t magic;
  uint32_t version;
  uint32_t flags;
  uint32_t nr_modules;
  uint64_t modlist_paddr;
  uint64_t cmdline_paddr;
  uint64_t rsdp_paddr;
  uint64_t memmap_paddr;  // version >= 1
  uint32_t memmap_entries;
  uint32_t reserved;
};
static_assert(sizeof(HvmStartInfo) == 56, "hvm_start_info layout");

enum MemmapType : uint32_t { kMemmapRam = 1, kMemmapReserved = 2 };

struct HvmMemmapEntry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
  uint32_t reserved;
};
static_assert(sizeof(HvmMemmapEntry) == 24, "hvm_memmap_table_entry layout");

// Where the boot data lives. Below the 1 MiB kernel load address and the test guest's AP
// trampoline page (0x8000); a kernel segment overlapping it is rejected.
inline constexpr uint64_t kStartInfoAddr = 0x6000;
inline constexpr uint64_t kMemmapAddr = kStartInfoAddr + 64;
inline constexpr uint64_t kMaxMemmapEntries = (0x7000 - kMemmapAddr) / sizeof(HvmMemmapEntry);
inline constexpr uint64_t kCmdlineAddr = 0x7000;
inline constexpr uint64_t kCmdlineMax = 4095;  // bytes, without the terminating NUL
inline constexpr uint64_t kBootDataEnd = 0x8000;

// The legacy hole between conventional memory and 1 MiB (EBDA, VGA, option ROMs, BIOS) that is
// reported as reserved rather than RAM.
inline constexpr uint64_t kLegacyHoleStart = 0x9fc00;
inline constexpr uint64_t kLegacyHoleEnd = 0x100000;

// FAILED_PRECONDITION when a kernel segment overlaps the boot data area [0x6000, 0x8000).
absl::Status CheckBootDataClear(const PvhImage& image);

// RAM entries for every region (minus the legacy hole, which becomes a reserved entry), sorted.
std::vector<HvmMemmapEntry> BuildMemmap(const memory::GuestMemory& memory);

// What other loaders add to the start info: ACPI tables (vmm/acpi) and an initrd module list
// (vmm/linux LoadPvhInitrd). Zero = absent.
struct PvhBootExtras {
  uint64_t rsdp_paddr = 0;
  uint64_t modlist_paddr = 0;
  uint32_t nr_modules = 0;
};

// Writes the command line, the memory map and the start info. Returns the start info's address
// (for EBX). INVALID_ARGUMENT when the command line is too long ("--cmdline is N bytes; ...").
absl::StatusOr<uint64_t> WritePvhBootInfo(memory::GuestMemory& memory, const std::string& cmdline,
                                          const PvhBootExtras& extras = {});

}  // namespace amalgam::vmm::loader

#endif  // AMALGAM_VMM_LOADER_PVH_BOOT_H_
