// DeviceMachine, the integration `amalgam` and the control API share, on the real
// vmm::machine::Machine: devices created before the machine (their command-line words and ACPI
// list go into its config), attached through its vm()/mmio_bus() hooks between Create and
// Start, dropped after the vCPUs ended and before the machine.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <vector>

#include "guest/blk_pattern.h"
#include "vmm/devices/test_util.h"
#include "vmm/machine/machine.h"
#include "vmm/virtio_devices/device_machine.h"

namespace amalgam::vmm::virtio_devices {
namespace {

TEST_CASE("Machine + VirtioDevices: blk, rng and console in one boot, 2 vCPUs") {
  if (access("/dev/kvm", R_OK | W_OK) != 0) {
    WARN("SKIP: /dev/kvm is not accessible");
    return;
  }
  const char* dir = getenv("TEST_TMPDIR");
  const std::string disk = std::string(dir ? dir : "/tmp") + "/machine_disk.img";
  {
    const int fd = open(disk.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(ftruncate(fd, 4 << 20) == 0);
    close(fd);
  }
  auto sink = std::make_shared<devices::StringSink>();
  VirtioOptions o;
  o.disks.push_back({disk, false});
  o.rng = true;
  o.console = true;
  o.console_out = sink;
  o.rng_id = "entropy";

  machine::MachineConfig c;
  c.kernel_path = "guest/test_guest.elf";
  c.cmdline = "blk mib=2 cpus=2";  // DeviceMachine appends the virtio_mmio.device= words
  c.vcpus = 2;
  c.serial_out = sink;
  auto dm = DeviceMachine::Create(c, o);
  INFO(dm.status().ToString());
  REQUIRE(dm.ok());
  REQUIRE((*dm)->devices().size() == 3);
  CHECK((*dm)->devices()[0].id == "disk0");
  CHECK((*dm)->devices()[0].kind == "block");
  CHECK((*dm)->devices()[0].detail == disk);
  CHECK((*dm)->devices()[1].id == "entropy");
  CHECK((*dm)->devices()[2].id == "console0");
  machine::Machine& m = (*dm)->machine();
  REQUIRE(m.Start().ok());
  std::optional<ExitOutcome> outcome = m.WaitFor(absl::Seconds(45));
  if (!outcome) m.Stop("test timeout");
  m.Wait();
  // The guest's requests show in the devices' counters.
  const auto counters = (*dm)->devices()[0].transport->Counters();
  CHECK(virtio::FindCounter(counters, "write_requests").value_or(0) > 0);
  CHECK(virtio::FindCounter(counters, "notifications").value_or(0) > 0);
  CHECK(virtio::FindCounter(counters, "device_errors") == 0u);
  dm->reset();  // devices off the bus before the machine goes
  INFO("serial:\n" << sink->str());
  REQUIRE(outcome.has_value());
  CHECK(outcome->kind == ExitKind::kDebugExit);
  CHECK(outcome->debug_exit_value == 0);
  CHECK(sink->str().find("blk: ok mib=2 id=amalgam-") != std::string::npos);

  std::ifstream f(disk, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), {});
  REQUIRE(bytes.size() == (4u << 20));
  size_t bad = 0;
  for (uint64_t off = 0; off < (2u << 20); off += 8) {
    const uint64_t want = amalgam_blk_pattern(off);
    if (memcmp(&bytes[off], &want, 8) != 0) ++bad;
  }
  CHECK(bad == 0);
}

}  // namespace
}  // namespace amalgam::vmm::virtio_devices
