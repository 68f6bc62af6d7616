// End to end: the real `amalgam` binary boots the real test guest (//guest:test_guest) on KVM and
// runs each workload; checks the serial protocol lines (guest/README.md) and the exit status.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "vmm/run_process_testutil.h"

namespace amalgam::vmm {
namespace {

// Boots the guest with `cmdline`; returns the serial output (via --serial-out) and the result.
ProcessResult BootGuest(const std::string& cmdline, const std::string& memory, int vcpus,
                        std::string* serial) {
  std::string out = TestTempPath("serial.txt");
  std::remove(out.c_str());
  ProcessResult r =
      RunProcess({AmalgamBinary(), "--kernel", TestGuestElf(), "--cmdline", cmdline, "--memory",
                  memory, "--vcpus", std::to_string(vcpus), "--serial-out", out});
  *serial = ReadTextFile(out);
  return r;
}

void ExpectPassed(const ProcessResult& r, const std::string& serial) {
  INFO("stderr: " << r.err);
  INFO("serial: " << serial);
  CHECK_FALSE(r.timed_out);
  CHECK_FALSE(r.signaled);
  CHECK(HasLineStartingWith(serial, "amalgam-guest: ready"));
  CHECK(HasLineStartingWith(serial, "amalgam-guest: exit 0"));
  CHECK(r.exit_code == 1);  // debug-exit 0 -> (0 << 1) | 1
}

// Boots a workload that must pass and print `line`; returns the serial output.
std::string BootExpecting(const std::string& cmdline, const std::string& memory, int vcpus,
                          const std::string& line) {
  std::string serial;
  ProcessResult r = BootGuest(cmdline, memory, vcpus, &serial);
  ExpectPassed(r, serial);
  CHECK(HasLineStartingWith(serial, line));
  return serial;
}

TEST_CASE("boot: hello prints its greeting on stdout by default") {
  ProcessResult r = RunProcess({AmalgamBinary(), "--kernel", TestGuestElf(), "--cmdline", "hello"});
  ExpectPassed(r, r.out);
  CHECK(HasLineStartingWith(r.out, "hello: Hello from the amalgam test guest"));
  CHECK(r.err.empty());  // a debug-exit ends quietly
}

TEST_CASE("boot: memtouch writes and verifies guest RAM in ring 3") {
  BootExpecting("memtouch mib=32", "128M", 1, "memtouch: ok mib=32 pages=8192");
}

TEST_CASE("boot: memtouch asking for more than the memmap offers fails inside the guest") {
  std::string serial;
  ProcessResult r = BootGuest("memtouch mib=64", "32M", 1, &serial);
  INFO("serial: " << serial);
  CHECK(HasLineStartingWith(serial, "memtouch: FAIL"));
  CHECK(HasLineStartingWith(serial, "amalgam-guest: exit 1"));
  CHECK(r.exit_code == 3);  // debug-exit 1 -> 3
}

TEST_CASE("boot: compute gives its deterministic checksum") {
  // The same value QEMU's run pins (guest/qemu_boot_test.sh, guest/compute_test.cc).
  const std::string want = "compute: ok mib=16 checksum=0xdd78d5100543c95e";
  std::string serial = BootExpecting("compute mib=16", "64M", 1, want);
  // Same result on a second boot with more RAM and vCPUs.
  std::string again = BootExpecting("compute mib=16", "256M", 2, want);
  auto checksum = [](const std::string& s) {
    size_t at = s.find("compute: ok");
    return at == std::string::npos ? std::string() : s.substr(at, s.find('\n', at) - at);
  };
  CHECK(checksum(serial) == checksum(again));
}

TEST_CASE("boot: smp with one vCPU") {
  BootExpecting("smp cpus=1 iters=10000", "64M", 1, "smp: ok cpus=1 counter=10000");
}

TEST_CASE("boot: smp with two vCPUs (INIT-SIPI-SIPI through the in-kernel LAPIC)") {
  BootExpecting("smp cpus=2 iters=100000", "64M", 2, "smp: ok cpus=2 counter=200000");
}

TEST_CASE("boot: --disk and --rng attach virtio devices the guest finds on its command line") {
  std::string disk = TestTempPath("disk.img");
  {
    std::ofstream f(disk, std::ios::binary | std::ios::trunc);
    f.seekp((8 << 20) - 1);
    f.put('\0');
  }
  std::string out = TestTempPath("serial-virtio.txt");
  ProcessResult r = RunProcess({AmalgamBinary(), "--kernel", TestGuestElf(), "--cmdline",
                                "blk mib=4", "--disk", disk, "--rng", "--serial-out", out});
  std::string serial = ReadTextFile(out);
  ExpectPassed(r, serial);
  CHECK(HasLineStartingWith(serial, "blk: ok mib=4"));
  // The pattern the guest wrote is in the host file, byte for byte.
  ProcessResult check = RunProcess({Runfile("guest/blk_pattern_check"), disk, "4"});
  INFO("check: " << check.out << check.err);
  CHECK(check.exit_code == 0);

  r = RunProcess({AmalgamBinary(), "--kernel", TestGuestElf(), "--cmdline", "rng", "--rng"});
  ExpectPassed(r, r.out);
  CHECK(HasLineStartingWith(r.out, "rng: ok"));

  // A read-only disk answers the guest's writes with IOERR.
  r = RunProcess(
      {AmalgamBinary(), "--kernel", TestGuestElf(), "--cmdline", "blkro", "--disk", disk + ",ro"});
  ExpectPassed(r, r.out);
  CHECK(HasLineStartingWith(r.out, "blkro: ok write=ioerr"));
}

TEST_CASE("boot: --api-socket --config runs the VM under the control API") {
  std::string config = TestTempPath("vm.json");
  // A Unix socket path must fit in sun_path (108 bytes): TEST_TMPDIR is too deep.
  char dir[] = "/tmp/amalgam-api-XXXXXX";
  REQUIRE(::mkdtemp(dir) != nullptr);
  std::string sock = std::string(dir) + "/api.sock";
  std::string out = TestTempPath("serial-api.txt");
  {
    std::ofstream f(config);
    f << "{\"vcpus\": 2, \"memory_mib\": 128, \"serial_output\": \"" << out
      << "\", \"boot\": {\"kernel\": \"" << TestGuestElf()
      << "\", \"cmdline\": \"smp cpus=2 iters=1000\"}}";
  }
  ProcessResult r = RunProcess({AmalgamBinary(), "--api-socket", sock, "--config", config});
  std::string serial = ReadTextFile(out);
  ExpectPassed(r, serial);
  CHECK(HasLineStartingWith(serial, "smp: ok cpus=2 counter=2000"));
  CHECK(r.err.find("control API on " + sock) != std::string::npos);
  // The socket is gone once amalgam exits.
  std::ifstream gone(sock);
  CHECK_FALSE(gone.good());
  ::rmdir(dir);
}

}  // namespace
}  // namespace amalgam::vmm
