// End to end on real KVM: the test guest's ARP request leaves through virtio-net into a tap in a
// network namespace this test creates; the host kernel's ARP reply comes back into the guest.
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "vmm/virtio_devices/test_vmm.h"

namespace amalgam::vmm::virtio_devices {
namespace {

bool Run(const std::string& cmd) {
  const std::string full = "PATH=/usr/sbin:/usr/bin:/sbin:/bin " + cmd;
  return system(full.c_str()) == 0;
}

TEST_CASE("net: a frame reaches a tap in a fresh netns and the reply reaches the guest") {
  if (access("/dev/kvm", R_OK | W_OK) != 0 || access("/dev/net/tun", R_OK | W_OK) != 0) {
    WARN("SKIP: /dev/kvm or /dev/net/tun is not accessible");
    return;
  }
  // The whole test process moves into its own network namespace (before any thread exists, so
  // the vCPU and pump threads live there too); nothing leaks into the host's namespace.
  if (unshare(CLONE_NEWNET) != 0) {
    WARN("SKIP: unshare(CLONE_NEWNET) failed (needs root / CAP_SYS_ADMIN): " << strerror(errno));
    return;
  }
  REQUIRE(Run("ip link set lo up"));
  REQUIRE(Run("ip tuntap add dev amtap0 mode tap"));
  REQUIRE(Run("ip addr add 10.0.2.2/24 dev amtap0"));
  REQUIRE(Run("ip link set amtap0 up"));
  // The tap's MAC, asked in this namespace (sysfs would show the host's).
  const int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  REQUIRE(sock >= 0);
  ifreq ifr = {};
  strcpy(ifr.ifr_name, "amtap0");
  REQUIRE(ioctl(sock, SIOCGIFHWADDR, &ifr) == 0);
  close(sock);
  char tap_mac[18];
  const auto* m = reinterpret_cast<const uint8_t*>(ifr.ifr_hwaddr.sa_data);
  snprintf(tap_mac, sizeof(tap_mac), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4],
           m[5]);

  VirtioOptions o;
  auto spec = ParseNetFlag("tap=amtap0");
  REQUIRE(spec.ok());
  o.nets.push_back(*spec);
  auto r = BootTestGuest("guest/test_guest.elf", "net", o);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  INFO("serial output:\n" << r->serial << "stop: " << r->stop_reason);
  CHECK(r->debug_exit);
  CHECK(r->exit_value == 0);
  CHECK(r->serial.find(std::string("net: ok arp-reply from 10.0.2.2 mac=") + tap_mac + "\n") !=
        std::string::npos);
  CHECK(r->device_errors == 0);

  // The tap's own counters: frames the guest sent arrived on it (its RX), the reply left (TX).
  // (The neighbour entry the request created is flushed when the tap loses its carrier.)
  std::ifstream dev("/proc/self/net/dev");
  std::string line;
  uint64_t rx_packets = 0, tx_packets = 0;
  while (std::getline(dev, line)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos || line.substr(0, colon).find("amtap0") == std::string::npos) {
      continue;
    }
    uint64_t v[10] = {};
    sscanf(line.c_str() + colon + 1, "%lu %lu %lu %lu %lu %lu %lu %lu %lu %lu", &v[0], &v[1], &v[2],
           &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
    rx_packets = v[1];
    tx_packets = v[9];
  }
  CHECK(rx_packets >= 1);
  CHECK(tx_packets >= 1);

  // The same guest driver against QEMU's virtio-net on the same tap: validates the driver
  // independently of amalgam's device (skipped without QEMU).
  if (Run("command -v qemu-system-x86_64 > /dev/null")) {
    const char* tmp = getenv("TEST_TMPDIR");
    const std::string log = std::string(tmp ? tmp : "/tmp") + "/qemu_net.log";
    const bool ran =
        Run("timeout 120 qemu-system-x86_64 -M microvm,acpi=off -enable-kvm "
            "-cpu host,-arch-capabilities -m 256 -nodefaults -no-user-config -nographic -no-reboot "
            "-serial stdio -device isa-debug-exit,iobase=0xf4,iosize=0x04 "
            "-global virtio-mmio.force-legacy=false "
            "-netdev tap,id=n0,ifname=amtap0,script=no,downscript=no "
            "-device virtio-net-device,netdev=n0 -kernel guest/test_guest.elf -append net > " +
            log + " 2>&1 < /dev/null; test $? = 1");
    std::ifstream q(log);
    std::string qemu_out((std::istreambuf_iterator<char>(q)), {});
    INFO("QEMU output:\n" << qemu_out);
    CHECK(ran);
    CHECK(qemu_out.find(std::string("net: ok arp-reply from 10.0.2.2 mac=") + tap_mac) !=
          std::string::npos);
  } else {
    WARN("qemu-system-x86_64 not installed: the QEMU half is skipped");
  }
}

TEST_CASE("--net flag parsing") {
  auto a = ParseNetFlag("tap=t0,mac=02:00:00:00:00:07");
  REQUIRE(a.ok());
  CHECK(a->tap == "t0");
  CHECK(a->mac[5] == 7);
  CHECK(!ParseNetFlag("mac=02:00:00:00:00:07").ok());
  CHECK(!ParseNetFlag("tap=t0,mac=01:00:00:00:00:07").ok());  // multicast
  CHECK(!ParseNetFlag("tap=t0,mac=zz").ok());
  CHECK(!ParseNetFlag("tap=t0,vhost=on").ok());
}

}  // namespace
}  // namespace amalgam::vmm::virtio_devices
