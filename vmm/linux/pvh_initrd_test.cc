#include "vmm/linux/pvh_initrd.h"

#include <catch2/catch.hpp>
#include <string>

#include "memory/guest_memory.h"
#include "memory/test_memory.h"

namespace amalgam::vmm::linux_boot {
namespace {

using memory::GuestAddress;
using memory::GuestMemory;

constexpr uint64_t kMiB = 1 << 20;

std::unique_ptr<GuestMemory> Mem(uint64_t bytes) { return memory::testing::MakeX86Memory(bytes); }

TEST_CASE("LoadPvhInitrd writes the initrd high and a one-entry modlist") {
  auto mem = Mem(256 * kMiB);
  std::vector<uint8_t> initrd(300000);
  for (size_t i = 0; i < initrd.size(); ++i) initrd[i] = static_cast<uint8_t>(i ^ (i >> 8));
  PvhInitrdOptions o;
  o.kernel_end = 0x3000000;
  absl::StatusOr<PvhInitrd> r = LoadPvhInitrd(*mem, initrd, o);
  REQUIRE(r.ok());
  CHECK(r->nr_modules == 1);
  CHECK(r->modlist_paddr == kPvhModlistAddr);
  CHECK(r->initrd_addr == ((256 * kMiB - initrd.size()) & ~0xfffull));
  absl::StatusOr<HvmModlistEntry> e = mem->ReadObj<HvmModlistEntry>(GuestAddress(kPvhModlistAddr));
  REQUIRE(e.ok());
  CHECK(e->paddr == r->initrd_addr);
  CHECK(e->size == initrd.size());
  CHECK(e->cmdline_paddr == 0);
  std::vector<uint8_t> back(initrd.size());
  REQUIRE(mem->Read(GuestAddress(r->initrd_addr), absl::MakeSpan(back)).ok());
  CHECK(back == initrd);
}

TEST_CASE("LoadPvhInitrd stays below max_end and above the kernel") {
  auto mem = Mem(4 * 1024 * kMiB);  // RAM up to 3 GiB, then from 4 GiB
  std::vector<uint8_t> initrd(5 * kMiB, 0x5a);
  PvhInitrdOptions o;
  o.kernel_end = 0x2000000;
  absl::StatusOr<PvhInitrd> r = LoadPvhInitrd(*mem, initrd, o);
  REQUIRE(r.ok());
  CHECK(r->initrd_addr == kPvhInitrdMaxEnd - 5 * kMiB);
}

TEST_CASE("LoadPvhInitrd: bad input is a clear error") {
  auto mem = Mem(32 * kMiB);
  PvhInitrdOptions o;
  o.kernel_end = 0x1800000;  // 24 MiB: 8 MiB left
  std::vector<uint8_t> big(9 * kMiB, 1);
  absl::StatusOr<PvhInitrd> r = LoadPvhInitrd(*mem, big, o);
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(r.status().message()).find("more memory") != std::string::npos);
  CHECK(!LoadPvhInitrd(*mem, {}, o).ok());
  std::vector<uint8_t> small(100, 1);
  o.modlist_addr = 0x5004;
  CHECK(!LoadPvhInitrd(*mem, small, o).ok());
  o.modlist_addr = 0xa0000;  // in the legacy hole
  CHECK(!LoadPvhInitrd(*mem, small, o).ok());
}

}  // namespace
}  // namespace amalgam::vmm::linux_boot
