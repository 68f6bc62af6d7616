// Loads the real Debian kernel and initramfs that tools/make-guest.sh builds. The files are never
// committed: when they have not been built the test says how to build them and passes.
#include <catch2/catch.hpp>
#include <string>

#include "memory/guest_memory.h"
#include "vmm/linux/boot_params.h"
#include "vmm/linux/bzimage.h"
#include "vmm/linux/guest_image_testutil.h"

namespace amalgam::vmm::linux_boot {
namespace {

using testing::HaveGuestImageFiles;
using testing::ReadWholeFile;

TEST_CASE("The Debian bzImage parses and loads with its initramfs") {
  std::string dir;
  if (!HaveGuestImageFiles({"vmlinuz", "initramfs.cpio.gz"}, &dir)) return;
  std::vector<uint8_t> image, initrd;
  REQUIRE(ReadWholeFile(dir + "/vmlinuz", &image));
  REQUIRE(ReadWholeFile(dir + "/initramfs.cpio.gz", &initrd));
  absl::StatusOr<SetupHeader> h = ParseSetupHeader(image);
  REQUIRE(h.ok());
  CHECK(h->version >= 0x020c);
  CHECK((h->xloadflags & kXlfKernel64) != 0);
  CHECK(h->relocatable);
  CHECK(h->pref_address == 0x1000000);  // CONFIG_PHYSICAL_START
  CHECK(h->init_size > h->kernel_size);
  CHECK(h->cmdline_size >= 2047);
  CHECK(h->header_end >= kParsedHeaderEnd);

  auto mem = memory::GuestMemory::Create(memory::GuestMemory::X86Layout(512 << 20));
  REQUIRE(mem.ok());
  BzImageOptions o;
  o.cmdline = "console=ttyS0 reboot=t panic=-1";
  o.initrd = initrd;
  o.rsdp_addr = 0xe0000;
  absl::StatusOr<BzImageBoot> boot = LoadBzImage(**mem, image, o);
  INFO(boot.status().ToString());
  REQUIRE(boot.ok());
  CHECK(boot->entry == 0x1000200);
  CHECK(boot->initrd_addr >= boot->kernel_end);
  CHECK(boot->initrd_addr + boot->initrd_size <= uint64_t{h->initrd_addr_max} + 1);
  std::vector<uint8_t> head(64);
  REQUIRE((*mem)->Read(memory::GuestAddress(0x1000000), absl::MakeSpan(head)).ok());
  CHECK(std::equal(head.begin(), head.end(), image.begin() + h->setup_bytes));
}

TEST_CASE("make-guest's vmlinux is the bzImage's decompressed payload") {
  std::string dir;
  if (!HaveGuestImageFiles({"vmlinuz", "vmlinux"}, &dir)) return;
  std::vector<uint8_t> image, vmlinux;
  REQUIRE(ReadWholeFile(dir + "/vmlinuz", &image));
  REQUIRE(ReadWholeFile(dir + "/vmlinux", &vmlinux));
  absl::StatusOr<SetupHeader> h = ParseSetupHeader(image);
  REQUIRE(h.ok());
  // Every kernel compressor's payload ends with the decompressed size (le32).
  size_t end = h->setup_bytes + h->payload_offset + h->payload_length;
  REQUIRE(end <= image.size());
  uint32_t size = image[end - 4] | image[end - 3] << 8 | image[end - 2] << 16 |
                  static_cast<uint32_t>(image[end - 1]) << 24;
  CHECK(vmlinux.size() == size);
  REQUIRE(vmlinux.size() > 64);
  CHECK(std::string(vmlinux.begin(), vmlinux.begin() + 4) ==
        "\x7f"
        "ELF");
  CHECK(vmlinux[4] == 2);  // ELFCLASS64
  // The PVH entry note the vmm's ELF loader looks for: type XEN_ELFNOTE_PHYS32_ENTRY (18), "Xen".
  std::string text(vmlinux.begin(), vmlinux.end());
  CHECK(text.find(std::string("Xen\0", 4)) != std::string::npos);
}

}  // namespace
}  // namespace amalgam::vmm::linux_boot
