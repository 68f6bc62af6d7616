// The Linux/x86 boot protocol's setup header (Documentation/x86/boot.rst): parsed and checked
// from the first bytes of a bzImage, for the 64-bit entry. Every field is bounds-checked against
// the image, so a truncated or foreign file is an error, never a crash.
// Thread-safety: pure functions and value types.
#ifndef AMALGAM_VMM_LINUX_SETUP_HEADER_H_
#define AMALGAM_VMM_LINUX_SETUP_HEADER_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace amalgam::vmm::linux_boot {

// Field offsets inside the image, which are also their offsets inside boot_params.
inline constexpr size_t kSetupSectsOffset = 0x1f1;
inline constexpr size_t kSyssizeOffset = 0x1f4;
inline constexpr size_t kBootFlagOffset = 0x1fe;
inline constexpr size_t kJumpOffset = 0x200;
inline constexpr size_t kHeaderMagicOffset = 0x202;
inline constexpr size_t kVersionOffset = 0x206;
inline constexpr size_t kTypeOfLoaderOffset = 0x210;
inline constexpr size_t kLoadflagsOffset = 0x211;
inline constexpr size_t kCode32StartOffset = 0x214;
inline constexpr size_t kRamdiskImageOffset = 0x218;
inline constexpr size_t kRamdiskSizeOffset = 0x21c;
inline constexpr size_t kCmdLinePtrOffset = 0x228;
inline constexpr size_t kInitrdAddrMaxOffset = 0x22c;
inline constexpr size_t kKernelAlignmentOffset = 0x230;
inline constexpr size_t kRelocatableOffset = 0x234;
inline constexpr size_t kXloadflagsOffset = 0x236;
inline constexpr size_t kCmdlineSizeOffset = 0x238;
inline constexpr size_t kPayloadOffsetOffset = 0x248;
inline constexpr size_t kPayloadLengthOffset = 0x24c;
inline constexpr size_t kPrefAddressOffset = 0x258;
inline constexpr size_t kInitSizeOffset = 0x260;
// The last field this parser reads ends here (init_size, protocol 2.10+).
inline constexpr size_t kParsedHeaderEnd = 0x264;
// boot_params.hdr may not extend past this (the next boot_params field).
inline constexpr size_t kMaxHeaderEnd = 0x290;

inline constexpr uint32_t kHdrSMagic = 0x53726448;  // "HdrS"
inline constexpr uint16_t kBootFlag = 0xaa55;
// 2.12 added xloadflags, which is how a kernel says it has the 64-bit entry.
inline constexpr uint16_t kMinVersion = 0x020c;

inline constexpr uint8_t kLoadedHigh = 0x01;    // loadflags: protected-mode code at 1 MiB+
inline constexpr uint16_t kXlfKernel64 = 0x01;  // xloadflags: 64-bit entry at load + 0x200
inline constexpr uint16_t kXlfCanBeLoadedAbove4G = 0x02;
inline constexpr uint64_t kEntry64Offset = 0x200;

struct SetupHeader {
  uint16_t version = 0;      // e.g. 0x020f for 2.15
  uint32_t setup_bytes = 0;  // (setup_sects + 1) * 512: where the protected-mode kernel starts
  uint64_t kernel_size = 0;  // bytes of protected-mode kernel in the image
  uint32_t header_end = 0;   // 0x202 + the jump's displacement: the copy range for boot_params
  uint8_t loadflags = 0;
  uint16_t xloadflags = 0;
  uint32_t initrd_addr_max = 0;  // highest address the initrd may occupy (inclusive)
  uint32_t kernel_alignment = 0;
  bool relocatable = false;
  uint32_t cmdline_size = 0;  // maximum command line length, without the NUL
  uint64_t pref_address = 0;
  uint32_t init_size = 0;  // bytes the kernel needs from its load address on
  uint32_t payload_offset = 0;
  uint32_t payload_length = 0;
};

// Parses and validates the setup header of `image` (a whole bzImage). INVALID_ARGUMENT names the
// problem and the fix: truncated file, not a bzImage (no 0xAA55 / "HdrS"), boot protocol older
// than 2.12, no 64-bit entry (XLF_KERNEL_64), not LOADED_HIGH, inconsistent sizes.
absl::StatusOr<SetupHeader> ParseSetupHeader(absl::Span<const uint8_t> image);

}  // namespace amalgam::vmm::linux_boot

#endif  // AMALGAM_VMM_LINUX_SETUP_HEADER_H_
