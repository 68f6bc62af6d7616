// BuildTestElf: a minimal synthetic PVH ELF64 image for loader and machine tests.
// Thread-safety: pure functions, except that the writers create files.
#ifndef AMALGAM_VMM_LOADER_TEST_ELF_H_
#define AMALGAM_VMM_LOADER_TEST_ELF_H_

#include <cstdint>
#include <string>
#include <vector>

namespace amalgam::vmm::loader {

struct TestElfOptions {
  uint64_t load_paddr = 0x100000;
  std::vector<uint8_t> code = {0xf4};  // hlt
  uint64_t bss_bytes = 0x1000;         // zero-filled tail of the segment
  bool pvh_note = true;
  uint32_t note_desc_size = 4;  // 4 or 8
  uint32_t entry = 0x100000;
  uint8_t elf_class = 2;  // ELFCLASS64
  uint16_t machine = 62;  // EM_X86_64
};

// The offset of the code inside the file (for tests that corrupt things around it).
inline constexpr uint64_t kTestElfCodeOffset = 0x200;

std::vector<uint8_t> BuildTestElf(const TestElfOptions& options = {});

// A 32-bit PVH guest that writes `text` to the COM1 THR, then `exit_value` to port 0xF4, then
// halts (in case the VMM ignores the debug-exit write).
std::vector<uint8_t> SerialThenExitCode(const char* text, uint8_t exit_value);

// Writes `bytes` to $TEST_TMPDIR/name (else /tmp/name); returns the path, "" on failure (a
// machine or loader given "" then fails with a clear error).
std::string WriteTestFile(const std::string& name, const std::vector<uint8_t>& bytes);
// BuildTestElf with `code` (defaults otherwise), written with WriteTestFile.
std::string WriteTestKernel(const std::string& name, const std::vector<uint8_t>& code);

}  // namespace amalgam::vmm::loader

#endif  // AMALGAM_VMM_LOADER_TEST_ELF_H_
