#include "vmm/linux/pvh_initrd.h"

#include "absl/strings/str_format.h"
#include "vmm/linux/initrd.h"

namespace amalgam::vmm::linux_boot {

absl::StatusOr<PvhInitrd> LoadPvhInitrd(memory::GuestMemory& memory,
                                        absl::Span<const uint8_t> initrd,
                                        const PvhInitrdOptions& options) {
  if (options.modlist_addr % 8 != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("PVH modlist_addr 0x%x must be 8-byte aligned", options.modlist_addr));
  }
  absl::StatusOr<std::vector<E820Entry>> ram = UsableRam(memory, options.carve_outs);
  if (!ram.ok()) return ram.status();
  bool modlist_in_ram = false;
  for (const E820Entry& e : *ram) {
    if (options.modlist_addr >= e.addr &&
        options.modlist_addr - e.addr + sizeof(HvmModlistEntry) <= e.size) {
      modlist_in_ram = true;
    }
  }
  if (!modlist_in_ram) {
    return absl::InvalidArgumentError(
        absl::StrFormat("PVH modlist_addr 0x%x is not in usable guest RAM", options.modlist_addr));
  }
  InitrdLimits limits;
  limits.min_addr = (options.kernel_end + memory::kPageSize - 1) & ~(memory::kPageSize - 1);
  limits.max_end = options.max_end;
  absl::StatusOr<uint64_t> addr = PlaceInitrd(*ram, initrd.size(), limits);
  if (!addr.ok()) return addr.status();

  absl::Status s = memory.Write(memory::GuestAddress(*addr), initrd);
  HvmModlistEntry entry{*addr, initrd.size(), 0, 0};
  if (s.ok()) s = memory.WriteObj(memory::GuestAddress(options.modlist_addr), entry);
  if (!s.ok()) {
    return absl::InternalError(
        absl::StrFormat("PVH initrd: writing guest memory: %s", s.message()));
  }
  PvhInitrd out;
  out.modlist_paddr = options.modlist_addr;
  out.nr_modules = 1;
  out.initrd_addr = *addr;
  out.initrd_size = initrd.size();
  return out;
}

}  // namespace amalgam::vmm::linux_boot
