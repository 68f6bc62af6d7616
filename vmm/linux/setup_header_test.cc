#include "vmm/linux/setup_header.h"

#include <catch2/catch.hpp>
#include <string>

#include "vmm/linux/test_bzimage.h"

namespace amalgam::vmm::linux_boot {
namespace {

// Expects INVALID_ARGUMENT whose message contains `needle`.
void ExpectRejected(const std::vector<uint8_t>& image, const std::string& needle) {
  absl::StatusOr<SetupHeader> h = ParseSetupHeader(image);
  INFO(h.status().ToString());
  REQUIRE(!h.ok());
  CHECK(h.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(h.status().message()).find(needle) != std::string::npos);
}

TEST_CASE("A well-formed 2.15 header parses with every field") {
  std::vector<uint8_t> img = MakeBzImage();
  absl::StatusOr<SetupHeader> h = ParseSetupHeader(img);
  REQUIRE(h.ok());
  CHECK(h->version == 0x020f);
  CHECK(h->setup_bytes == 1024);
  CHECK(h->kernel_size == 64 * 1024);
  CHECK(h->header_end == 0x268);
  CHECK(h->xloadflags == 0x03);
  CHECK(h->initrd_addr_max == 0x7fffffff);
  CHECK(h->kernel_alignment == 0x200000);
  CHECK(h->relocatable);
  CHECK(h->cmdline_size == 2047);
  CHECK(h->pref_address == 0x1000000);
  CHECK(h->init_size == (1u << 20));
  CHECK(h->payload_offset == 0x100);
}

TEST_CASE("setup_sects 0 means 4") {
  FakeBzImageSpec spec;
  spec.setup_sects = 0;
  absl::StatusOr<SetupHeader> h = ParseSetupHeader(MakeBzImage(spec));
  REQUIRE(h.ok());
  CHECK(h->setup_bytes == 5 * 512);
}

TEST_CASE("Every truncation of a bzImage is rejected, as truncated") {
  std::vector<uint8_t> img = MakeBzImage();
  for (size_t len = 0; len < img.size(); len += (len < 0x300 ? 1 : 61)) {
    std::vector<uint8_t> cut(img.begin(), img.begin() + len);
    absl::StatusOr<SetupHeader> h = ParseSetupHeader(cut);
    INFO("length " << len << ": " << h.status().ToString());
    REQUIRE(!h.ok());
    // Cuts before the magic look like "not a bzImage" only if they keep no header at all.
    if (len >= kHeaderMagicOffset + 4) {
      CHECK(std::string(h.status().message()).find("truncated") != std::string::npos);
    }
  }
  std::vector<uint8_t> one_short(img.begin(), img.end() - 1);
  ExpectRejected(one_short, "syssize");
}

TEST_CASE("Foreign files are not bzImages") {
  std::vector<uint8_t> elf(4096, 0);
  elf[0] = 0x7f, elf[1] = 'E', elf[2] = 'L', elf[3] = 'F';
  ExpectRejected(elf, "HdrS");
  std::vector<uint8_t> img = MakeBzImage();
  img[kBootFlagOffset] = 0;
  ExpectRejected(img, "0xAA55");
}

TEST_CASE("Old boot protocol versions are rejected with the minimum named") {
  for (uint16_t v : {0x0200, 0x0202, 0x020a, 0x020b}) {
    FakeBzImageSpec spec;
    spec.version = v;
    INFO(std::hex << v);
    ExpectRejected(MakeBzImage(spec), "needs >= 2.12");
  }
  FakeBzImageSpec spec;
  spec.version = 0x020c;
  CHECK(ParseSetupHeader(MakeBzImage(spec)).ok());
}

TEST_CASE("Kernels without the 64-bit entry or LOADED_HIGH are rejected") {
  FakeBzImageSpec spec;
  spec.xloadflags = 0x02;
  ExpectRejected(MakeBzImage(spec), "XLF_KERNEL_64");
  spec = FakeBzImageSpec();
  spec.loadflags = 0;
  ExpectRejected(MakeBzImage(spec), "LOADED_HIGH");
}

TEST_CASE("Inconsistent header fields are rejected") {
  FakeBzImageSpec spec;
  spec.kernel_alignment = 0x300000;
  ExpectRejected(MakeBzImage(spec), "power of two");

  spec = FakeBzImageSpec();
  spec.jump_displacement = 0x10;  // header would end inside the fields we read
  ExpectRejected(MakeBzImage(spec), "setup header ends");
  spec.jump_displacement = 0xa0;  // past boot_params.hdr
  ExpectRejected(MakeBzImage(spec), "setup header ends");

  spec = FakeBzImageSpec();
  spec.init_size = 4096;
  ExpectRejected(MakeBzImage(spec), "init_size");

  spec = FakeBzImageSpec();
  spec.cmdline_size = 0;
  ExpectRejected(MakeBzImage(spec), "cmdline_size");

  spec = FakeBzImageSpec();
  spec.pref_address = 0x1000;
  ExpectRejected(MakeBzImage(spec), "pref_address");

  std::vector<uint8_t> img = MakeBzImage();
  img[kPayloadLengthOffset + 2] = 0x10;  // payload length ~1 MiB > the 64 KiB kernel
  ExpectRejected(img, "payload");
}

}  // namespace
}  // namespace amalgam::vmm::linux_boot
