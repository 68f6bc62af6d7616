// The integration the `amalgam` binary needs, on the real vmm::machine::Machine: devices
// created before the machine (their command-line words and ACPI list go into its config),
// attached through its vm()/mmio_bus() hooks between Create and Start, dropped after the vCPUs
// ended and before the machine.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <vector>

#include "guest/blk_pattern.h"
#include "vmm/devices/test_util.h"
#include "vmm/machine/machine.h"
#include "vmm/virtio_devices/virtio_devices.h"

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
  auto virtio = VirtioDevices::Create(o);
  REQUIRE(virtio.ok());

  machine::MachineConfig c;
  c.kernel_path = "guest/test_guest.elf";
  c.cmdline = "blk mib=2 cpus=2 " + (*virtio)->KernelCmdline();
  c.vcpus = 2;
  c.serial_out = sink;
  c.virtio_mmio = (*virtio)->AcpiDevices();
  auto m = machine::Machine::Create(c);
  INFO(m.status().ToString());
  REQUIRE(m.ok());
  REQUIRE((*virtio)->Attach(&(*m)->memory(), &(*m)->vm(), &(*m)->mmio_bus()).ok());
  REQUIRE((*m)->Start().ok());
  std::optional<ExitOutcome> outcome = (*m)->WaitFor(absl::Seconds(45));
  if (!outcome) (*m)->Stop("test timeout");
  (*m)->Wait();
  virtio->reset();  // before the machine: it unregisters from the Vm and the bus
  m->reset();
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
