// The zero page (struct boot_params) for the Linux 64-bit boot protocol: the kernel's own setup
// header copied from the image, then the loader's fields (loader type, command line, initrd,
// ACPI RSDP, E820 map) filled in.
// Thread-safety: pure functions.
#ifndef AMALGAM_VMM_LINUX_BOOT_PARAMS_H_
#define AMALGAM_VMM_LINUX_BOOT_PARAMS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "vmm/linux/e820.h"
#include "vmm/linux/setup_header.h"

namespace amalgam::vmm::linux_boot {

inline constexpr size_t kBootParamsSize = 4096;
// boot_params offsets outside the setup header.
inline constexpr size_t kAcpiRsdpAddrOffset = 0x070;
inline constexpr size_t kExtRamdiskImageOffset = 0x0c0;
inline constexpr size_t kExtRamdiskSizeOffset = 0x0c4;
inline constexpr size_t kExtCmdLinePtrOffset = 0x0c8;
inline constexpr size_t kE820EntriesOffset = 0x1e8;
inline constexpr size_t kE820TableOffset = 0x2d0;
inline constexpr size_t kE820EntrySize = 20;
inline constexpr uint8_t kLoaderTypeUndefined = 0xff;

struct BootParamsFields {
  uint64_t kernel_load = 0;  // reported in code32_start
  uint64_t cmdline_addr = 0;
  uint64_t initrd_addr = 0;  // 0 with size 0: no initrd
  uint64_t initrd_size = 0;
  uint64_t rsdp_addr = 0;  // 0: the guest scans for the RSDP itself
  std::vector<E820Entry> e820;
};

// INVALID_ARGUMENT if the E820 map has more than kMaxE820Entries entries or `image` is shorter
// than header.header_end (ParseSetupHeader checked it, so only a mismatched pair fails).
absl::StatusOr<std::vector<uint8_t>> BuildBootParams(absl::Span<const uint8_t> image,
                                                     const SetupHeader& header,
                                                     const BootParamsFields& fields);

}  // namespace amalgam::vmm::linux_boot

#endif  // AMALGAM_VMM_LINUX_BOOT_PARAMS_H_
