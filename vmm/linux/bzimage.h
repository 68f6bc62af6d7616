// Loads a bzImage for the Linux 64-bit boot protocol: the protected-mode kernel at its preferred
// address, the initrd as high as the header allows, the command line and the zero page
// (boot_params with the E820 map) in low memory. The vCPU then starts in long mode at `entry`
// with RSI = boot_params (identity-mapped page tables and flat segments are the caller's job).
// Thread-safety: writes guest memory; call before any vCPU runs. Ownership: borrows everything.
#ifndef AMALGAM_VMM_LINUX_BZIMAGE_H_
#define AMALGAM_VMM_LINUX_BZIMAGE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "memory/guest_memory.h"
#include "vmm/linux/e820.h"
#include "vmm/linux/setup_header.h"

namespace amalgam::vmm::linux_boot {

// Low-memory layout (below the legacy hole, clear of the usual page-table pages at 0x9000+).
inline constexpr uint64_t kBootParamsAddr = 0x7000;
inline constexpr uint64_t kCmdlineAddr = 0x20000;
inline constexpr uint64_t kCmdlineAreaEnd = kLegacyHoleStart;

struct BzImageOptions {
  std::string cmdline;
  absl::Span<const uint8_t> initrd;  // empty: no initrd
  uint64_t rsdp_addr = 0;            // boot_params.acpi_rsdp_addr; 0: the guest scans for it
  std::vector<E820Entry> carve_outs = DefaultCarveOuts();
};

struct BzImageBoot {
  SetupHeader header;
  uint64_t entry = 0;        // 64-bit entry point: kernel_load + 0x200
  uint64_t boot_params = 0;  // for RSI
  uint64_t kernel_load = 0;
  uint64_t kernel_end = 0;  // kernel_load + init_size: the kernel's working window
  uint64_t cmdline_addr = 0;
  uint64_t initrd_addr = 0;  // 0 when there is no initrd
  uint64_t initrd_size = 0;
  std::vector<E820Entry> e820;
};

// INVALID_ARGUMENT (one line naming the field and the fix) for: a bad or truncated image (see
// ParseSetupHeader), a command line longer than the header's cmdline_size or containing NUL,
// guest RAM that cannot hold the kernel at pref_address + init_size, an initrd that does not fit
// below initrd_addr_max, or a bad carve-out list.
absl::StatusOr<BzImageBoot> LoadBzImage(memory::GuestMemory& memory,
                                        absl::Span<const uint8_t> image,
                                        const BzImageOptions& options);

}  // namespace amalgam::vmm::linux_boot

#endif  // AMALGAM_VMM_LINUX_BZIMAGE_H_
