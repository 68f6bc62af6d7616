#include "vmm/linux/boot_params.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace amalgam::vmm::linux_boot {
namespace {

void PutLe(std::vector<uint8_t>& b, size_t off, uint64_t value, int width) {
  for (int i = 0; i < width; ++i) b[off + i] = static_cast<uint8_t>(value >> (8 * i));
}

}  // namespace

absl::StatusOr<std::vector<uint8_t>> BuildBootParams(absl::Span<const uint8_t> image,
                                                     const SetupHeader& header,
                                                     const BootParamsFields& fields) {
  if (image.size() < header.header_end || header.header_end > kMaxHeaderEnd) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "boot_params: the image (%d bytes) does not hold the setup header up to 0x%x", image.size(),
        header.header_end));
  }
  if (fields.e820.size() > kMaxE820Entries) {
    return absl::InvalidArgumentError(
        absl::StrFormat("boot_params: %d E820 entries; the zero page holds %d", fields.e820.size(),
                        kMaxE820Entries));
  }
  std::vector<uint8_t> bp(kBootParamsSize, 0);
  // The header exactly as the kernel's build wrote it; the kernel reads its own fields back.
  std::copy(image.begin() + kSetupSectsOffset, image.begin() + header.header_end,
            bp.begin() + kSetupSectsOffset);
  bp[kTypeOfLoaderOffset] = kLoaderTypeUndefined;
  PutLe(bp, kCode32StartOffset, fields.kernel_load, 4);
  PutLe(bp, kCmdLinePtrOffset, fields.cmdline_addr & 0xffffffff, 4);
  PutLe(bp, kExtCmdLinePtrOffset, fields.cmdline_addr >> 32, 4);
  PutLe(bp, kRamdiskImageOffset, fields.initrd_addr & 0xffffffff, 4);
  PutLe(bp, kExtRamdiskImageOffset, fields.initrd_addr >> 32, 4);
  PutLe(bp, kRamdiskSizeOffset, fields.initrd_size & 0xffffffff, 4);
  PutLe(bp, kExtRamdiskSizeOffset, fields.initrd_size >> 32, 4);
  PutLe(bp, kAcpiRsdpAddrOffset, fields.rsdp_addr, 8);
  bp[kE820EntriesOffset] = static_cast<uint8_t>(fields.e820.size());
  for (size_t i = 0; i < fields.e820.size(); ++i) {
    size_t off = kE820TableOffset + i * kE820EntrySize;
    PutLe(bp, off, fields.e820[i].addr, 8);
    PutLe(bp, off + 8, fields.e820[i].size, 8);
    PutLe(bp, off + 16, static_cast<uint32_t>(fields.e820[i].type), 4);
  }
  return bp;
}

}  // namespace amalgam::vmm::linux_boot
