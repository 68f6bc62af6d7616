// Synthetic bzImages for tests and the fuzzer's seed: a valid setup header (protocol 2.15 by
// default) and a patterned "kernel" after it. Every field can be overridden to build bad input.
// Thread-safety: pure functions.
#ifndef AMALGAM_VMM_LINUX_TEST_BZIMAGE_H_
#define AMALGAM_VMM_LINUX_TEST_BZIMAGE_H_

#include <cstdint>
#include <vector>

namespace amalgam::vmm::linux_boot {

struct FakeBzImageSpec {
  uint16_t version = 0x020f;
  uint8_t setup_sects = 1;
  uint8_t jump_displacement = 0x66;  // header ends at 0x268, as in 2.15 kernels
  uint8_t loadflags = 0x01;          // LOADED_HIGH
  uint16_t xloadflags = 0x03;        // XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G
  uint32_t initrd_addr_max = 0x7fffffff;
  uint32_t kernel_alignment = 0x200000;
  bool relocatable = true;
  uint32_t cmdline_size = 2047;
  uint64_t pref_address = 0x1000000;
  uint32_t kernel_bytes = 64 * 1024;
  uint32_t init_size = 1 << 20;
};

std::vector<uint8_t> MakeBzImage(const FakeBzImageSpec& spec = FakeBzImageSpec());

// The byte MakeBzImage puts at offset i of the protected-mode kernel.
inline uint8_t FakeKernelByte(uint64_t i) { return static_cast<uint8_t>(i * 7 + 3); }

}  // namespace amalgam::vmm::linux_boot

#endif  // AMALGAM_VMM_LINUX_TEST_BZIMAGE_H_
