// Test helpers for DPDK over net_af_packet: two network namespaces joined by a veth pair (MTU
// 1500, fixed MACs), entering a namespace, and the DpdkTransportOptions of the node on each end.
// Needs root. Thread-safety: call from a single-threaded test process (or, for EnterNamespace,
// from the thread that should move). Test-only.
#ifndef AMALGAM_FABRIC_DPDK_VETH_TEST_UTIL_H_
#define AMALGAM_FABRIC_DPDK_VETH_TEST_UTIL_H_

#include <functional>
#include <string>

#include "fabric/dpdk/dpdk_test_util.h"

namespace amalgam::fabric::testing {

// Runs a shell command quietly; its exit status (-1 if it did not exit).
int Sh(const std::string& cmd);

// Two namespaces with a veth pair between them, MTU 1500, fixed MACs. Deleted on destruction.
// `tag` keeps several pairs of one test process apart. Namespaces left by dead test processes
// are removed first.
struct VethPair {
  explicit VethPair(int tag);
  ~VethPair();
  VethPair(const VethPair&) = delete;
  VethPair& operator=(const VethPair&) = delete;
  // Tries kernel loss injection on both ends (false if sch_netem is missing).
  bool AddNetemLoss(int percent);

  std::string ns[2], dev[2];
  std::string mac[2] = {"02:00:00:00:00:01", "02:00:00:00:00:02"};
  bool ok = false;
  bool netem = false;
  std::string why;
};

// Moves the calling thread into namespace `ns` (/run/netns/ns).
bool EnterNamespace(const std::string& ns);
// EnterNamespace, then fn() (for forked node processes).
NodeReport InNamespace(const std::string& ns, const std::function<NodeReport()>& fn);
// True as root; otherwise prints why the test is skipped.
bool NeedRoot();
// Node i + 1 on end i of `v` (af_packet vdev, MTU 1500, the other end's MAC pinned).
DpdkTransportOptions AfPacketNode(const VethPair& v, int i, const FrameKey& key);

}  // namespace amalgam::fabric::testing

#endif  // AMALGAM_FABRIC_DPDK_VETH_TEST_UTIL_H_
