#include "vmm/loader/pvh_boot.h"

#include <catch2/catch.hpp>
#include <string>

#include "vmm/loader/test_elf.h"

namespace amalgam::vmm::loader {
namespace {

using memory::GuestAddress;
using memory::GuestMemory;

TEST_CASE("pvh boot: memmap splits the legacy hole out of low RAM and keeps high RAM") {
  auto mem =
      GuestMemory::Create({{GuestAddress(0), 64 << 20}, {GuestAddress(4ull << 30), 1 << 20}});
  REQUIRE(mem.ok());
  std::vector<HvmMemmapEntry> map = BuildMemmap(**mem);
  REQUIRE(map.size() == 4);
  CHECK(map[0].addr == 0);
  CHECK(map[0].size == kLegacyHoleStart);
  CHECK(map[0].type == kMemmapRam);
  CHECK(map[1].addr == kLegacyHoleStart);
  CHECK(map[1].type == kMemmapReserved);
  CHECK(map[2].addr == 0x100000);
  CHECK(map[2].size == (64 << 20) - 0x100000);
  CHECK(map[2].type == kMemmapRam);
  CHECK(map[3].addr == 4ull << 30);
  CHECK(map[3].type == kMemmapRam);
}

TEST_CASE("pvh boot: start info, memmap and cmdline land where the start info says") {
  auto mem = GuestMemory::Create(GuestMemory::X86Layout(32 << 20));
  REQUIRE(mem.ok());
  auto at = WritePvhBootInfo(**mem, "smp cpus=2 iters=10");
  REQUIRE(at.ok());
  auto info = (*mem)->ReadObj<HvmStartInfo>(GuestAddress(*at));
  REQUIRE(info.ok());
  CHECK(info->magic == 0x336ec578);
  CHECK(info->version == 1);
  CHECK(info->rsdp_paddr == 0);
  CHECK(info->memmap_entries == 3);
  std::string line(64, '\0');
  REQUIRE((*mem)
              ->Read(GuestAddress(info->cmdline_paddr),
                     absl::MakeSpan(reinterpret_cast<uint8_t*>(line.data()), line.size()))
              .ok());
  CHECK(std::string(line.c_str()) == "smp cpus=2 iters=10");
  auto last = (*mem)->ReadObj<HvmMemmapEntry>(
      GuestAddress(info->memmap_paddr + 2 * sizeof(HvmMemmapEntry)));
  REQUIRE(last.ok());
  CHECK(last->addr + last->size == 32 << 20);
}

TEST_CASE("pvh boot: ACPI and module-list addresses pass through to the start info") {
  auto mem = GuestMemory::Create(GuestMemory::X86Layout(8 << 20));
  REQUIRE(mem.ok());
  auto at = WritePvhBootInfo(**mem, "", {0xe0000, 0x5000, 1});
  REQUIRE(at.ok());
  auto info = (*mem)->ReadObj<HvmStartInfo>(GuestAddress(*at));
  REQUIRE(info.ok());
  CHECK(info->rsdp_paddr == 0xe0000);
  CHECK(info->modlist_paddr == 0x5000);
  CHECK(info->nr_modules == 1);
}

TEST_CASE("pvh boot: a too-long cmdline is one clear error") {
  auto mem = GuestMemory::Create(GuestMemory::X86Layout(4 << 20));
  REQUIRE(mem.ok());
  CHECK(WritePvhBootInfo(**mem, std::string(kCmdlineMax, 'x')).ok());
  absl::Status s = WritePvhBootInfo(**mem, std::string(kCmdlineMax + 1, 'x')).status();
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(s.message()) == "--cmdline is 4096 bytes; the limit is 4095");
}

TEST_CASE("pvh boot: an image overlapping the boot data area is refused") {
  TestElfOptions o;
  o.load_paddr = 0x7000;
  o.entry = 0x7000;
  auto image = ParsePvhElf(BuildTestElf(o));
  REQUIRE(image.ok());
  CHECK(CheckBootDataClear(*image).code() == absl::StatusCode::kFailedPrecondition);
  auto fine = ParsePvhElf(BuildTestElf());
  REQUIRE(fine.ok());
  CHECK(CheckBootDataClear(*fine).ok());
}

}  // namespace
}  // namespace amalgam::vmm::loader
