#include "fabric/dpdk/veth_test_util.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace amalgam::fabric::testing {

int Sh(const std::string& cmd) {
  int rc = std::system((cmd + " >/dev/null 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

namespace {

// Removes namespaces left by earlier runs of this test whose process is gone.
void RemoveStaleNamespaces() {
  FILE* f = popen("ip netns list 2>/dev/null", "r");
  if (f == nullptr) return;
  char line[256];
  while (std::fgets(line, sizeof(line), f)) {
    int pid = 0;
    char side = 0;
    if (std::sscanf(line, "amf%c%d", &side, &pid) == 2 && pid > 0 && kill(pid, 0) != 0) {
      Sh(std::string("ip netns del ") + std::strtok(line, " \n"));
    }
  }
  pclose(f);
}

}  // namespace

VethPair::VethPair(int tag) {
  RemoveStaleNamespaces();
  std::string id = std::to_string(getpid()) + "x" + std::to_string(tag);
  for (int i = 0; i < 2; ++i) {
    ns[i] = std::string("amf") + "ab"[i] + id;
    dev[i] = std::string("amv") + "ab"[i] + id;
  }
  if (dev[0].size() > 15) {
    why = "interface name too long";
    return;
  }
  if (Sh("ip netns add " + ns[0]) || Sh("ip netns add " + ns[1]) ||
      Sh("ip link add " + dev[0] + " type veth peer name " + dev[1])) {
    why = "ip netns/veth creation failed";
    return;
  }
  for (int i = 0; i < 2; ++i) {
    if (Sh("ip link set " + dev[i] + " netns " + ns[i]) ||
        Sh("ip -n " + ns[i] + " link set " + dev[i] + " address " + mac[i]) ||
        Sh("ip -n " + ns[i] + " link set " + dev[i] + " mtu 1500 up") ||
        Sh("ip -n " + ns[i] + " link set lo up")) {
      why = "veth configuration failed";
      return;
    }
    // Less kernel chatter (router solicitations) on the link; harmless if it fails.
    Sh("ip netns exec " + ns[i] + " sh -c 'echo 1 > /proc/sys/net/ipv6/conf/" + dev[i] +
       "/disable_ipv6'");
  }
  ok = true;
}

bool VethPair::AddNetemLoss(int percent) {
  for (int i = 0; i < 2; ++i) {
    if (Sh("ip netns exec " + ns[i] + " tc qdisc add dev " + dev[i] + " root netem loss " +
           std::to_string(percent) + "%")) {
      return false;
    }
  }
  netem = true;
  return true;
}

VethPair::~VethPair() {
  Sh("ip netns del " + ns[0]);
  Sh("ip netns del " + ns[1]);
}

bool EnterNamespace(const std::string& ns) {
  int fd = open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = setns(fd, CLONE_NEWNET) == 0;
  close(fd);
  return ok;
}

DpdkTransportOptions AfPacketNode(const VethPair& v, int i, const FrameKey& key) {
  DpdkTransportOptions o;
  o.self = i + 1;
  o.cluster_key = key;
  o.eal.lcore = i;
  o.eal.file_prefix = "amfp" + std::to_string(getpid()) + "n" + std::to_string(i);
  o.port.devargs = "net_af_packet" + std::to_string(i) + ",iface=" + v.dev[i];
  o.peers[2 - i] = v.mac[1 - i];
  o.mtu = 1500;
  return o;
}

NodeReport InNamespace(const std::string& ns, const std::function<NodeReport()>& fn) {
  if (!EnterNamespace(ns)) {
    NodeReport r;
    std::snprintf(r.error, sizeof(r.error), "setns(%s) failed", ns.c_str());
    return r;
  }
  return fn();
}

bool NeedRoot() {
  if (geteuid() == 0) return true;
  std::printf("SKIPPED: creating network namespaces and veth pairs needs root\n");
  return false;
}

}  // namespace amalgam::fabric::testing
