#include "vmm/linux/bzimage.h"

#include <catch2/catch.hpp>
#include <string>

#include "memory/guest_memory.h"
#include "memory/test_memory.h"
#include "vmm/linux/boot_params.h"
#include "vmm/linux/test_bzimage.h"

namespace amalgam::vmm::linux_boot {
namespace {

using memory::GuestAddress;
using memory::GuestMemory;

constexpr uint64_t kMiB = 1 << 20;

std::unique_ptr<GuestMemory> Mem(uint64_t bytes) { return memory::testing::MakeX86Memory(bytes); }

std::vector<uint8_t> ReadBytes(const GuestMemory& mem, uint64_t addr, size_t n) {
  std::vector<uint8_t> out(n);
  REQUIRE(mem.Read(GuestAddress(addr), absl::MakeSpan(out)).ok());
  return out;
}

uint64_t Le(const std::vector<uint8_t>& b, size_t off, int width) {
  uint64_t v = 0;
  for (int i = 0; i < width; ++i) v |= uint64_t{b[off + i]} << (8 * i);
  return v;
}

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 13);
  return v;
}

void ExpectInvalid(const absl::StatusOr<BzImageBoot>& r, const std::string& needle) {
  INFO(r.status().ToString());
  REQUIRE(!r.ok());
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(r.status().message()).find(needle) != std::string::npos);
}

TEST_CASE("LoadBzImage lays out kernel, initrd, command line and boot_params") {
  auto mem = Mem(128 * kMiB);
  std::vector<uint8_t> image = MakeBzImage();
  std::vector<uint8_t> initrd = Pattern(100000, 7);
  BzImageOptions o;
  o.cmdline = "console=ttyS0 reboot=t panic=-1";
  o.initrd = initrd;
  o.rsdp_addr = 0xe0000;
  absl::StatusOr<BzImageBoot> boot = LoadBzImage(*mem, image, o);
  REQUIRE(boot.ok());

  CHECK(boot->kernel_load == 0x1000000);
  CHECK(boot->entry == 0x1000200);
  CHECK(boot->boot_params == kBootParamsAddr);
  CHECK(boot->kernel_end == 0x1000000 + (1 << 20));
  // The highest page-aligned spot in RAM: RAM ends at 128 MiB.
  CHECK(boot->initrd_addr == ((128 * kMiB - initrd.size()) & ~0xfffull));
  CHECK(boot->initrd_size == initrd.size());

  std::vector<uint8_t> kernel = ReadBytes(*mem, 0x1000000, 64 * 1024);
  for (size_t i = 0; i < kernel.size(); ++i) {
    if (kernel[i] != FakeKernelByte(i)) FAIL("kernel byte " << i);
  }
  CHECK(ReadBytes(*mem, boot->initrd_addr, initrd.size()) == initrd);
  std::vector<uint8_t> cmdline = ReadBytes(*mem, kCmdlineAddr, o.cmdline.size() + 1);
  CHECK(std::string(cmdline.begin(), cmdline.end() - 1) == o.cmdline);
  CHECK(cmdline.back() == 0);

  std::vector<uint8_t> bp = ReadBytes(*mem, kBootParamsAddr, kBootParamsSize);
  CHECK(Le(bp, kHeaderMagicOffset, 4) == kHdrSMagic);  // the header was copied
  CHECK(Le(bp, kVersionOffset, 2) == 0x020f);
  CHECK(bp[kTypeOfLoaderOffset] == 0xff);
  CHECK(Le(bp, kCmdLinePtrOffset, 4) == kCmdlineAddr);
  CHECK(Le(bp, kExtCmdLinePtrOffset, 4) == 0);
  CHECK(Le(bp, kRamdiskImageOffset, 4) == boot->initrd_addr);
  CHECK(Le(bp, kRamdiskSizeOffset, 4) == initrd.size());
  CHECK(Le(bp, kAcpiRsdpAddrOffset, 8) == 0xe0000);
  CHECK(Le(bp, kCode32StartOffset, 4) == 0x1000000);
  REQUIRE(bp[kE820EntriesOffset] == 3);
  CHECK(Le(bp, kE820TableOffset + 0, 8) == 0);
  CHECK(Le(bp, kE820TableOffset + 8, 8) == 0x9fc00);
  CHECK(Le(bp, kE820TableOffset + 16, 4) == 1);
  CHECK(Le(bp, kE820TableOffset + 20 + 16, 4) == 2);
  CHECK(Le(bp, kE820TableOffset + 40, 8) == 0x100000);
  CHECK(Le(bp, kE820TableOffset + 48, 8) == 128 * kMiB - 0x100000);
  // Nothing past the header's end leaks from the image's setup code.
  CHECK(Le(bp, 0x268, 8) == 0);
}

TEST_CASE("No initrd, no RSDP: those fields stay zero") {
  auto mem = Mem(64 * kMiB);
  absl::StatusOr<BzImageBoot> boot = LoadBzImage(*mem, MakeBzImage(), BzImageOptions());
  REQUIRE(boot.ok());
  CHECK(boot->initrd_addr == 0);
  std::vector<uint8_t> bp = ReadBytes(*mem, kBootParamsAddr, kBootParamsSize);
  CHECK(Le(bp, kRamdiskImageOffset, 4) == 0);
  CHECK(Le(bp, kRamdiskSizeOffset, 4) == 0);
  CHECK(Le(bp, kAcpiRsdpAddrOffset, 8) == 0);
  CHECK(ReadBytes(*mem, kCmdlineAddr, 1)[0] == 0);
}

TEST_CASE("The initrd respects initrd_addr_max") {
  auto mem = Mem(256 * kMiB);
  FakeBzImageSpec spec;
  spec.initrd_addr_max = 48 * kMiB - 1;
  std::vector<uint8_t> initrd = Pattern(3 * kMiB + 5, 1);
  BzImageOptions o;
  o.initrd = initrd;
  absl::StatusOr<BzImageBoot> boot = LoadBzImage(*mem, MakeBzImage(spec), o);
  REQUIRE(boot.ok());
  CHECK(boot->initrd_addr + initrd.size() <= 48 * kMiB);
  CHECK(boot->initrd_addr == ((48 * kMiB - initrd.size()) & ~0xfffull));
  CHECK(boot->initrd_addr >= boot->kernel_end);
}

TEST_CASE("Bad input: clear errors") {
  auto mem = Mem(64 * kMiB);
  std::vector<uint8_t> image = MakeBzImage();

  SECTION("truncated bzImage") {
    std::vector<uint8_t> cut(image.begin(), image.begin() + image.size() / 2);
    ExpectInvalid(LoadBzImage(*mem, cut, BzImageOptions()), "truncated");
  }
  SECTION("wrong boot protocol version") {
    FakeBzImageSpec spec;
    spec.version = 0x0206;
    ExpectInvalid(LoadBzImage(*mem, MakeBzImage(spec), BzImageOptions()), "2.06 is too old");
  }
  SECTION("initrd too large for guest memory") {
    std::vector<uint8_t> initrd(60 * kMiB, 1);
    BzImageOptions o;
    o.initrd = initrd;
    ExpectInvalid(LoadBzImage(*mem, image, o), "more memory");
  }
  SECTION("command line too long") {
    BzImageOptions o;
    o.cmdline = std::string(2047, 'x');
    CHECK(LoadBzImage(*mem, image, o).ok());
    o.cmdline.push_back('y');
    ExpectInvalid(LoadBzImage(*mem, image, o), "at most 2047 (setup header cmdline_size)");
  }
  SECTION("command line with a NUL") {
    BzImageOptions o;
    o.cmdline = std::string("a\0b", 3);
    ExpectInvalid(LoadBzImage(*mem, image, o), "NUL");
  }
  SECTION("guest RAM too small for the kernel's init_size at pref_address") {
    auto small = Mem(16 * kMiB + 512 * 1024);
    ExpectInvalid(LoadBzImage(*small, image, BzImageOptions()), "at least 17 MiB");
  }
}

}  // namespace
}  // namespace amalgam::vmm::linux_boot
