// An initrd for a PVH boot (vmlinux through XEN_ELFNOTE_PHYS32_ENTRY): the initrd is placed in
// guest RAM like a bzImage's (as high as allowed, page aligned) and described by a one-entry
// hvm_modlist_entry array; the caller puts modlist_paddr and nr_modules into its hvm_start_info.
// Thread-safety: writes guest memory; call before any vCPU runs. Ownership: borrows everything.
#ifndef AMALGAM_VMM_LINUX_PVH_INITRD_H_
#define AMALGAM_VMM_LINUX_PVH_INITRD_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "memory/guest_memory.h"
#include "vmm/linux/e820.h"

namespace amalgam::vmm::linux_boot {

// xen/include/public/arch-x86/hvm/start_info.h: struct hvm_modlist_entry.
struct HvmModlistEntry {
  uint64_t paddr;
  uint64_t size;
  uint64_t cmdline_paddr;  // 0: no module command line
  uint64_t reserved;
};
static_assert(sizeof(HvmModlistEntry) == 32, "hvm_modlist_entry layout");

// Just below the PVH loader's start info page (0x6000), in conventional memory.
inline constexpr uint64_t kPvhModlistAddr = 0x5000;
// Linux's PVH entry copies the module address into boot_params.hdr.ramdisk_image (+ ext_), so any
// address works; stay below 2 GiB like a bzImage's initrd_addr_max by default.
inline constexpr uint64_t kPvhInitrdMaxEnd = 0x80000000;

struct PvhInitrdOptions {
  uint64_t kernel_end = 0;  // the highest byte the kernel's segments (and bss) use, exclusive
  uint64_t modlist_addr = kPvhModlistAddr;
  uint64_t max_end = kPvhInitrdMaxEnd;
  std::vector<E820Entry> carve_outs = DefaultCarveOuts();
};

struct PvhInitrd {
  uint64_t modlist_paddr = 0;  // for hvm_start_info.modlist_paddr
  uint32_t nr_modules = 0;     // for hvm_start_info.nr_modules
  uint64_t initrd_addr = 0;
  uint64_t initrd_size = 0;
};

// Places and writes the initrd and its modlist entry. INVALID_ARGUMENT when the initrd is empty
// or does not fit in RAM above kernel_end and below max_end, or when the modlist address is not
// in RAM or not 8-byte aligned.
absl::StatusOr<PvhInitrd> LoadPvhInitrd(memory::GuestMemory& memory,
                                        absl::Span<const uint8_t> initrd,
                                        const PvhInitrdOptions& options);

}  // namespace amalgam::vmm::linux_boot

#endif  // AMALGAM_VMM_LINUX_PVH_INITRD_H_
