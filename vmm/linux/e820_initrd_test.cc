#include <catch2/catch.hpp>
#include <string>

#include "memory/guest_memory.h"
#include "memory/test_memory.h"
#include "vmm/linux/e820.h"
#include "vmm/linux/initrd.h"

namespace amalgam::vmm::linux_boot {
namespace {

using memory::GuestAddress;
using memory::GuestMemory;

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;

std::unique_ptr<GuestMemory> Mem(std::vector<memory::RegionSpec> regions) {
  return memory::testing::MakeMemory(std::move(regions));
}

TEST_CASE("E820 of a small guest: low RAM, the legacy hole, RAM from 1 MiB") {
  auto mem = Mem(GuestMemory::X86Layout(512 * kMiB));
  absl::StatusOr<std::vector<E820Entry>> map = BuildE820(*mem, DefaultCarveOuts());
  REQUIRE(map.ok());
  std::vector<E820Entry> want = {{0, 0x9fc00, E820Type::kRam},
                                 {0x9fc00, 0x100000 - 0x9fc00, E820Type::kReserved},
                                 {0x100000, 512 * kMiB - 0x100000, E820Type::kRam}};
  CHECK(*map == want);
}

TEST_CASE("E820 of a large guest keeps the 3-4 GiB hole out of RAM") {
  auto mem = Mem(GuestMemory::X86Layout(5 * kGiB));
  absl::StatusOr<std::vector<E820Entry>> map = BuildE820(*mem, DefaultCarveOuts());
  REQUIRE(map.ok());
  uint64_t ram = 0;
  for (const E820Entry& e : *map) {
    if (e.type == E820Type::kRam) {
      ram += e.size;
      CHECK((e.end() <= 3 * kGiB || e.addr >= 4 * kGiB));
    }
  }
  CHECK(ram == 5 * kGiB - (0x100000 - 0x9fc00));
  CHECK(map->back().end() == 6 * kGiB);
}

TEST_CASE("E820 carve-outs: extra reserved ranges, and bad lists rejected") {
  auto mem = Mem({{GuestAddress(0), 64 * kMiB}});
  std::vector<E820Entry> holes = DefaultCarveOuts();
  holes.push_back({32 * kMiB, 4096, E820Type::kAcpi});
  absl::StatusOr<std::vector<E820Entry>> map = BuildE820(*mem, holes);
  REQUIRE(map.ok());
  REQUIRE(map->size() == 5);
  CHECK((*map)[3] == E820Entry{32 * kMiB, 4096, E820Type::kAcpi});
  CHECK((*map)[4] == E820Entry{32 * kMiB + 4096, 32 * kMiB - 4096, E820Type::kRam});

  holes.push_back({32 * kMiB + 100, 10, E820Type::kReserved});  // overlaps the ACPI range
  CHECK(BuildE820(*mem, holes).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(BuildE820(*mem, {{~0ull - 10, 100, E820Type::kReserved}}).status().code() ==
        absl::StatusCode::kInvalidArgument);

  std::vector<E820Entry> many;
  for (uint64_t i = 0; i < 200; ++i) many.push_back({kMiB + i * 8192, 4096, E820Type::kReserved});
  absl::StatusOr<std::vector<E820Entry>> too_many = BuildE820(*mem, many);
  CHECK(too_many.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(too_many.status().message()).find("at most 128") != std::string::npos);
}

TEST_CASE("The initrd goes as high as allowed, page aligned") {
  std::vector<E820Entry> ram = {{0, 0x9fc00, E820Type::kRam},
                                {0x100000, 512 * kMiB - 0x100000, E820Type::kRam}};
  InitrdLimits limits{17 * kMiB, 0x80000000};
  absl::StatusOr<uint64_t> addr = PlaceInitrd(ram, 10000, limits);
  REQUIRE(addr.ok());
  CHECK(*addr == ((512 * kMiB - 10000) & ~0xfffull));
  CHECK(*addr + 10000 <= 512 * kMiB);

  // A big guest: the header's initrd_addr_max is the limit, not the end of RAM.
  ram = {{0x100000, 3 * kGiB - 0x100000, E820Type::kRam}, {4 * kGiB, kGiB, E820Type::kRam}};
  addr = PlaceInitrd(ram, 5 * kMiB, limits);
  REQUIRE(addr.ok());
  CHECK(*addr == 0x80000000 - 5 * kMiB);

  // Exactly the free space fits; one byte more does not.
  ram = {{0x100000, 32 * kMiB - 0x100000, E820Type::kRam}};
  limits = {17 * kMiB, 0x80000000};
  CHECK(PlaceInitrd(ram, 15 * kMiB, limits).value() == 17 * kMiB);
  absl::StatusOr<uint64_t> too_big = PlaceInitrd(ram, 15 * kMiB + 1, limits);
  CHECK(too_big.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(too_big.status().message()).find("initrd is 15728641 bytes") !=
        std::string::npos);
  CHECK(std::string(too_big.status().message()).find("more memory") != std::string::npos);

  CHECK(!PlaceInitrd(ram, 0, limits).ok());
  // Reserved entries are never used.
  CHECK(!PlaceInitrd({{0x100000, 64 * kMiB, E820Type::kReserved}}, 4096, {0, ~0ull}).ok());
}

}  // namespace
}  // namespace amalgam::vmm::linux_boot
