// End to end on real KVM: the test guest's ring-3 virtio driver against amalgam's virtio
// devices (real files, /dev/urandom, irqfds), through the minimal VM of test_vmm.h.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <vector>

#include "guest/blk_pattern.h"
#include "vmm/virtio_devices/test_vmm.h"

namespace amalgam::vmm::virtio_devices {
namespace {

const char kGuest[] = "guest/test_guest.elf";

std::string TempFile(const std::string& name, off_t size) {
  const char* dir = getenv("TEST_TMPDIR");
  std::string path = std::string(dir ? dir : "/tmp") + "/" + name;
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(ftruncate(fd, size) == 0);
  close(fd);
  return path;
}

bool HasLine(const std::string& out, const std::string& line) {
  return ("\n" + out).find("\n" + line + "\n") != std::string::npos;
}

BootResult Boot(const std::string& workload, VirtioOptions o) {
  if (access("/dev/kvm", R_OK | W_OK) != 0) {
    WARN("SKIP: /dev/kvm is not accessible");
    return {};
  }
  auto r = BootTestGuest(kGuest, workload, std::move(o));
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  INFO("serial output:\n" << r->serial << "stop: " << r->stop_reason);
  CHECK(r->debug_exit);
  return *r;
}

TEST_CASE("blk: the guest's pattern is on the host file byte for byte, after a flush") {
  const std::string disk = TempFile("blk.img", 8 << 20);
  VirtioOptions o;
  o.disks.push_back({disk, false});
  BootResult r = Boot("blk mib=4", o);
  if (!r.debug_exit) return;
  INFO(r.serial);
  CHECK(r.exit_value == 0);
  CHECK(r.serial.find("blk: ok mib=4 id=amalgam-") != std::string::npos);
  CHECK(r.device_errors == 0);
  std::ifstream f(disk, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), {});
  REQUIRE(bytes.size() == (8u << 20));
  size_t bad = 0;
  for (uint64_t off = 0; off < (4u << 20); off += 8) {
    const uint64_t want = amalgam_blk_pattern(off);
    if (memcmp(&bytes[off], &want, 8) != 0) ++bad;
  }
  CHECK(bad == 0);
  CHECK(std::all_of(bytes.begin() + (4 << 20), bytes.end(), [](uint8_t b) { return b == 0; }));
}

TEST_CASE("blk with notifications handled inside the MMIO exit (no ioeventfd)") {
  const std::string disk = TempFile("blk_sync.img", 4 << 20);
  VirtioOptions o;
  o.disks.push_back({disk, false});
  o.ioeventfd = false;
  BootResult r = Boot("blk mib=2", o);
  if (!r.debug_exit) return;
  CHECK(r.serial.find("blk: ok mib=2 id=amalgam-") != std::string::npos);
  CHECK(r.exit_value == 0);
  CHECK(r.device_errors == 0);
}

TEST_CASE("blkro: a read-only disk answers writes with IOERR") {
  VirtioOptions o;
  o.disks.push_back({TempFile("ro.img", 1 << 20), true});
  BootResult r = Boot("blkro", o);
  if (!r.debug_exit) return;
  CHECK(HasLine(r.serial, "blkro: ok write=ioerr"));
  CHECK(r.exit_value == 0);
}

TEST_CASE("blkbad: hostile chains are device errors and the VMM keeps running") {
  VirtioOptions o;
  o.disks.push_back({TempFile("bad.img", 1 << 20), false});
  BootResult r = Boot("blkbad", o);
  if (!r.debug_exit) return;
  CHECK(HasLine(r.serial, "blkbad: ok needs_reset=2 recovered=1"));
  CHECK(r.exit_value == 0);
  CHECK(r.device_errors == 2);
}

TEST_CASE("rng returns bytes") {
  VirtioOptions o;
  o.rng = true;
  BootResult r = Boot("rng", o);
  if (!r.debug_exit) return;
  CHECK(HasLine(r.serial, "rng: ok bytes=128"));
  CHECK(r.exit_value == 0);
}

TEST_CASE("console output appears in the serial sink") {
  VirtioOptions o;
  o.console = true;
  o.rng = true;  // a second device: the guest must pick the right one
  BootResult r = Boot("console", o);
  if (!r.debug_exit) return;
  CHECK(HasLine(r.serial, "virtio-console: hello from the amalgam test guest"));
  CHECK(HasLine(r.serial, "console: ok bytes=50"));
  CHECK(r.exit_value == 0);
}

TEST_CASE("a workload without its device fails cleanly") {
  BootResult r = Boot("blk", {});
  if (!r.debug_exit) return;
  CHECK(HasLine(r.serial, "blk: FAIL no virtio_mmio.device= on the command line"));
  CHECK(r.exit_value == 1);
}

}  // namespace
}  // namespace amalgam::vmm::virtio_devices
