// libFuzzer target: ParsePvhElf on arbitrary bytes, then loading into a small guest RAM. Any
// crash, sanitizer report or out-of-bounds write is a bug.
#include <cstddef>
#include <cstdint>

#include "memory/guest_memory.h"
#include "vmm/loader/pvh_elf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using amalgam::memory::GuestAddress;
  using amalgam::memory::GuestMemory;
  static GuestMemory* ram = [] {
    auto mem = GuestMemory::Create({{GuestAddress(0), 2 << 20}});
    return mem.ok() ? mem->release() : nullptr;
  }();
  absl::Span<const uint8_t> bytes(data, size);
  auto image = amalgam::vmm::loader::ParsePvhElf(bytes);
  if (image.ok() && ram != nullptr) {
    (void)amalgam::vmm::loader::LoadPvhSegments(*image, bytes, *ram);
  }
  return 0;
}
