#include "vmm/linux/test_bzimage.h"

#include "vmm/linux/setup_header.h"

namespace amalgam::vmm::linux_boot {
namespace {

void PutLe(std::vector<uint8_t>& b, size_t off, uint64_t value, int width) {
  for (int i = 0; i < width; ++i) b[off + i] = static_cast<uint8_t>(value >> (8 * i));
}

}  // namespace

std::vector<uint8_t> MakeBzImage(const FakeBzImageSpec& spec) {
  size_t setup_bytes = (size_t{spec.setup_sects == 0 ? 4u : spec.setup_sects} + 1) * 512;
  std::vector<uint8_t> img(setup_bytes + spec.kernel_bytes, 0);
  img[kSetupSectsOffset] = spec.setup_sects;
  PutLe(img, kSyssizeOffset, (spec.kernel_bytes + 15) / 16, 4);
  PutLe(img, kBootFlagOffset, kBootFlag, 2);
  img[kJumpOffset] = 0xeb;  // jmp short
  img[kJumpOffset + 1] = spec.jump_displacement;
  PutLe(img, kHeaderMagicOffset, kHdrSMagic, 4);
  PutLe(img, kVersionOffset, spec.version, 2);
  img[kLoadflagsOffset] = spec.loadflags;
  PutLe(img, kInitrdAddrMaxOffset, spec.initrd_addr_max, 4);
  PutLe(img, kKernelAlignmentOffset, spec.kernel_alignment, 4);
  img[kRelocatableOffset] = spec.relocatable ? 1 : 0;
  PutLe(img, kXloadflagsOffset, spec.xloadflags, 2);
  PutLe(img, kCmdlineSizeOffset, spec.cmdline_size, 4);
  if (spec.kernel_bytes >= 0x400) {
    PutLe(img, kPayloadOffsetOffset, 0x100, 4);
    PutLe(img, kPayloadLengthOffset, spec.kernel_bytes - 0x200, 4);
  }
  PutLe(img, kPrefAddressOffset, spec.pref_address, 8);
  PutLe(img, kInitSizeOffset, spec.init_size, 4);
  for (uint32_t i = 0; i < spec.kernel_bytes; ++i) img[setup_bytes + i] = FakeKernelByte(i);
  return img;
}

}  // namespace amalgam::vmm::linux_boot
