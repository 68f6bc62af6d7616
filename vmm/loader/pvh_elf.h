// PVH ELF loading: parse an ELF64 x86-64 image from bytes (every offset and size checked), find
// its PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY) and copy its PT_LOAD segments into guest RAM.
// Ownership: ParsePvhElf returns a description that refers to the caller's bytes by offset only.
// Thread-safety: pure functions; LoadPvhSegments writes guest memory (no vCPU may run).
#ifndef AMALGAM_VMM_LOADER_PVH_ELF_H_
#define AMALGAM_VMM_LOADER_PVH_ELF_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "memory/guest_memory.h"

namespace amalgam::vmm::loader {

inline constexpr uint32_t kXenElfNotePhys32Entry = 18;

struct ElfSegment {
  uint64_t paddr = 0;        // guest-physical load address (p_paddr)
  uint64_t file_offset = 0;  // p_offset; [file_offset, file_offset + file_size) is in the file
  uint64_t file_size = 0;
  uint64_t mem_size = 0;  // >= file_size; the rest is zeroed (bss)
};

struct PvhImage {
  uint32_t entry = 0;  // 32-bit protected-mode entry from the PVH note
  std::vector<ElfSegment> segments;
  uint64_t lowest_paddr = 0;   // over all segments
  uint64_t highest_paddr = 0;  // one past the end of the highest segment
};

// Validates the header, program headers and notes. Errors (INVALID_ARGUMENT) are one line
// without the file name, e.g. "not an ELF file (bad magic); ...", "truncated: ...".
absl::StatusOr<PvhImage> ParsePvhElf(absl::Span<const uint8_t> bytes);

// Copies the segments of a parsed image into guest RAM and zeroes their bss. Each segment must
// lie inside one RAM region (OUT_OF_RANGE naming the segment and the RAM size otherwise).
absl::Status LoadPvhSegments(const PvhImage& image, absl::Span<const uint8_t> bytes,
                             memory::GuestMemory& memory);

// Reads `path`, parses and loads it. Every error is one line starting with "kernel <path>: ".
absl::StatusOr<PvhImage> LoadPvhKernelFile(const std::string& path, memory::GuestMemory& memory);

}  // namespace amalgam::vmm::loader

#endif  // AMALGAM_VMM_LOADER_PVH_ELF_H_
