// A DpdkTransport for one node of an N-node cluster on one host, over net_memif. A memif
// interface joins exactly two processes, so every pair of nodes gets its own memif socket
// (<socket_dir>/memif-<lower id>-<higher id>.sock, lower id = server) and every node opens one
// port per peer (DpdkTransportOptions::peer_ports). Per-peer order and exactly-once delivery are
// DpdkTransport's, per link.
// Thread-safety: free functions, reentrant; the EAL starts once per process (InitEal).
#ifndef AMALGAM_FABRIC_DPDK_MEMIF_CLUSTER_H_
#define AMALGAM_FABRIC_DPDK_MEMIF_CLUSTER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fabric/cluster_key.h"
#include "fabric/dpdk/dpdk_transport.h"

namespace amalgam::fabric {

struct MemifClusterOptions {
  // Where the memif sockets are named. DPDK 22.11 memif sockets are abstract by default (no file
  // is created), so this is a name space: every node of one cluster must use the same one, and
  // two clusters on one host must not.
  std::string socket_dir = "/run/amalgam";
  size_t mtu = 1500;      // 1500: a page takes 3 link frames; 9000: one (adds bsize=16384)
  int lcore = 0;          // EAL -l (the thread is unpinned again afterwards)
  uint32_t mbufs = 8191;  // per peer port
  absl::Duration link_timeout = absl::Seconds(30);  // per port, waiting for the peer process
};

// Parses a spec a command line can carry: comma-separated key=value, all optional:
//   "dir=/run/amalgam,mtu=9000,lcore=1,mbufs=8191,link_timeout_s=30"
// INVALID_ARGUMENT names the bad key or value and the accepted ones.
absl::StatusOr<MemifClusterOptions> ParseMemifClusterSpec(absl::string_view spec);

// The memif socket shared by nodes `a` and `b` (order does not matter).
std::string MemifSocketPath(const std::string& socket_dir, NodeId a, NodeId b);

// The DpdkTransportOptions of node `self` whose peers are `peers` (self, if listed, is skipped).
absl::StatusOr<DpdkTransportOptions> MemifClusterTransportOptions(
    NodeId self, const std::vector<NodeId>& peers, const FrameKey& cluster_key,
    const MemifClusterOptions& options);

// Creates it: opens one memif port per peer in ascending peer id (waiting up to link_timeout
// for each peer process to come up) and starts the handshakes; WaitForPeer waits for them.
absl::StatusOr<std::unique_ptr<DpdkTransport>> MakeDpdkMemifTransport(
    NodeId self, const std::vector<NodeId>& peers, const FrameKey& cluster_key,
    const MemifClusterOptions& options);

}  // namespace amalgam::fabric

#endif  // AMALGAM_FABRIC_DPDK_MEMIF_CLUSTER_H_
