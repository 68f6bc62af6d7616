#include "vmm/virtio_devices/virtio_devices.h"

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>

namespace amalgam::vmm::virtio_devices {
namespace {

std::string TempFile(const std::string& name, off_t size) {
  const char* dir = getenv("TEST_TMPDIR");
  std::string path = std::string(dir ? dir : "/tmp") + "/" + name;
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(ftruncate(fd, size) == 0);
  close(fd);
  return path;
}

TEST_CASE("--disk PATH[,ro]") {
  auto a = ParseDiskFlag("/x/disk.img");
  REQUIRE(a.ok());
  CHECK(a->path == "/x/disk.img");
  CHECK(!a->read_only);
  auto b = ParseDiskFlag("/x/disk.img,ro");
  REQUIRE(b.ok());
  CHECK(b->read_only);
  CHECK(ParseDiskFlag("").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(ParseDiskFlag(",ro").status().code() == absl::StatusCode::kInvalidArgument);
  auto bad = ParseDiskFlag("/x/disk.img,rw");
  CHECK(std::string(bad.status().message()).find("unknown option 'rw'") != std::string::npos);
}

TEST_CASE("devices get windows, GSIs and command-line words in order") {
  VirtioOptions o;
  o.disks.push_back({TempFile("a.img", 1 << 20), false});
  o.disks.push_back({TempFile("b.img", 1 << 20), true});
  o.rng = true;
  o.console = true;
  auto v = VirtioDevices::Create(o);
  REQUIRE(v.ok());
  CHECK((*v)->KernelCmdline() ==
        "virtio_mmio.device=512@0xd0000000:5 virtio_mmio.device=512@0xd0001000:6 "
        "virtio_mmio.device=512@0xd0002000:7 virtio_mmio.device=512@0xd0003000:10");
  auto acpi = (*v)->AcpiDevices();
  REQUIRE(acpi.size() == 4);
  CHECK(acpi[3].base == 0xd0003000);
  CHECK(acpi[3].gsi == 10);
  CHECK(!acpi[3].level_triggered);
}

TEST_CASE("no devices: no command-line words") {
  auto v = VirtioDevices::Create({});
  REQUIRE(v.ok());
  CHECK((*v)->KernelCmdline().empty());
}

TEST_CASE("a missing or tiny disk is a clear flag error") {
  VirtioOptions o;
  o.disks.push_back({"/nonexistent/disk.img", false});
  auto v = VirtioDevices::Create(o);
  CHECK(v.status().code() == absl::StatusCode::kNotFound);
  CHECK(std::string(v.status().message()).find("--disk: disk /nonexistent/disk.img") == 0);
  VirtioOptions t;
  t.disks.push_back({TempFile("tiny.img", 100), false});
  CHECK(VirtioDevices::Create(t).status().code() == absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace amalgam::vmm::virtio_devices
