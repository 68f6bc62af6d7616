#include "vmm/linux/setup_header.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace amalgam::vmm::linux_boot {
namespace {

uint64_t Le(absl::Span<const uint8_t> b, size_t off, int width) {
  uint64_t v = 0;
  for (int i = 0; i < width; ++i) v |= uint64_t{b[off + i]} << (8 * i);
  return v;
}

absl::Status Bad(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("kernel image: ", what));
}

}  // namespace

absl::StatusOr<SetupHeader> ParseSetupHeader(absl::Span<const uint8_t> image) {
  if (image.size() < kVersionOffset + 2) {
    return Bad(absl::StrFormat(
        "%d bytes is too short for a bzImage (the setup header alone needs 0x%x); is the file "
        "truncated?",
        image.size(), kParsedHeaderEnd));
  }
  if (Le(image, kHeaderMagicOffset, 4) != kHdrSMagic) {
    return Bad("no \"HdrS\" magic at 0x202: not a bzImage (for an ELF vmlinux use the PVH loader)");
  }
  if (Le(image, kBootFlagOffset, 2) != kBootFlag) {
    return Bad("boot_flag at 0x1fe is not 0xAA55: not a bzImage or a corrupt one");
  }
  SetupHeader h;
  h.version = static_cast<uint16_t>(Le(image, kVersionOffset, 2));
  if (h.version < kMinVersion) {
    return Bad(absl::StrFormat(
        "boot protocol %d.%02d is too old: the 64-bit entry needs >= 2.12 (Linux 3.8+); use a "
        "newer kernel",
        h.version >> 8, h.version & 0xff));
  }
  if (image.size() < kParsedHeaderEnd) {
    return Bad(absl::StrFormat(
        "%d bytes is too short for a protocol 2.12+ setup header (0x%x bytes); is the file "
        "truncated?",
        image.size(), kParsedHeaderEnd));
  }
  uint32_t setup_sects = image[kSetupSectsOffset];
  if (setup_sects == 0) setup_sects = 4;  // the protocol's historical default
  h.setup_bytes = (setup_sects + 1) * 512;
  // The jump at 0x200 is "jmp short": its displacement byte tells where the header ends.
  h.header_end = static_cast<uint32_t>(kHeaderMagicOffset + image[kJumpOffset + 1]);
  if (h.header_end < kParsedHeaderEnd || h.header_end > kMaxHeaderEnd ||
      h.header_end > h.setup_bytes) {
    return Bad(absl::StrFormat(
        "setup header ends at 0x%x (jump at 0x200); it must lie in [0x%x, 0x%x] and inside the "
        "%d setup bytes",
        h.header_end, kParsedHeaderEnd, kMaxHeaderEnd, h.setup_bytes));
  }
  if (image.size() <= h.setup_bytes) {
    return Bad(absl::StrFormat(
        "%d bytes holds only the %d bytes of real-mode setup and no kernel; is the file "
        "truncated?",
        image.size(), h.setup_bytes));
  }
  h.kernel_size = image.size() - h.setup_bytes;
  uint64_t syssize_bytes = Le(image, kSyssizeOffset, 4) * 16;
  if (syssize_bytes > h.kernel_size) {
    return Bad(absl::StrFormat(
        "the header says the kernel is %d bytes (syssize) but the file holds %d after setup; "
        "the file is truncated",
        syssize_bytes, h.kernel_size));
  }
  h.loadflags = image[kLoadflagsOffset];
  h.xloadflags = static_cast<uint16_t>(Le(image, kXloadflagsOffset, 2));
  if (!(h.loadflags & kLoadedHigh)) {
    return Bad("loadflags lacks LOADED_HIGH: a zImage (loaded at 0x10000) is not supported");
  }
  if (!(h.xloadflags & kXlfKernel64)) {
    return Bad(
        "xloadflags lacks XLF_KERNEL_64: this kernel has no 64-bit entry (a 32-bit kernel?)");
  }
  h.initrd_addr_max = static_cast<uint32_t>(Le(image, kInitrdAddrMaxOffset, 4));
  h.kernel_alignment = static_cast<uint32_t>(Le(image, kKernelAlignmentOffset, 4));
  h.relocatable = image[kRelocatableOffset] != 0;
  h.cmdline_size = static_cast<uint32_t>(Le(image, kCmdlineSizeOffset, 4));
  h.payload_offset = static_cast<uint32_t>(Le(image, kPayloadOffsetOffset, 4));
  h.payload_length = static_cast<uint32_t>(Le(image, kPayloadLengthOffset, 4));
  h.pref_address = Le(image, kPrefAddressOffset, 8);
  h.init_size = static_cast<uint32_t>(Le(image, kInitSizeOffset, 4));
  if (h.kernel_alignment == 0 || (h.kernel_alignment & (h.kernel_alignment - 1)) != 0) {
    return Bad(absl::StrFormat("kernel_alignment 0x%x is not a power of two", h.kernel_alignment));
  }
  if (h.pref_address % h.kernel_alignment != 0 && !h.relocatable) {
    return Bad(absl::StrFormat("pref_address 0x%x is not aligned to kernel_alignment 0x%x",
                               h.pref_address, h.kernel_alignment));
  }
  if (uint64_t{h.payload_offset} + h.payload_length > h.kernel_size) {
    return Bad(absl::StrFormat(
        "the compressed payload [0x%x, +0x%x) runs past the %d kernel bytes in the file; the "
        "file is truncated",
        h.payload_offset, h.payload_length, h.kernel_size));
  }
  if (h.init_size < h.kernel_size) {
    return Bad(absl::StrFormat("init_size %d is smaller than the %d-byte kernel", h.init_size,
                               h.kernel_size));
  }
  if (h.cmdline_size == 0) return Bad("cmdline_size is 0: the kernel accepts no command line");
  if (h.pref_address < 0x100000 || h.pref_address > (uint64_t{1} << 46)) {
    return Bad(absl::StrFormat("pref_address 0x%x is outside [1 MiB, 64 TiB]", h.pref_address));
  }
  return h;
}

}  // namespace amalgam::vmm::linux_boot
