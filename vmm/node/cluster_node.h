// ClusterNode: what makes an `amalgam` process one node of a distributed guest: the fabric
// transport to every peer (--fabric tcp), the NodeRuntime over it, the wait for the peers, the
// goodbye (Leave) and the metrics at exit. vmm/main.cc stays thin: it calls Join before the
// vCPUs start and Finish after the guest ended (node 0), or RunMemoryNode (every other node).
// Thread-safety: Join/Finish from one thread; runtime() is thread-safe.
// Ownership: owns the transport and the runtime; borrows the guest memory (node 0), which must
// outlive Finish.
#ifndef AMALGAM_VMM_NODE_CLUSTER_NODE_H_
#define AMALGAM_VMM_NODE_CLUSTER_NODE_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "directory/home_map.h"
#include "fabric/peer_liveness.h"
#include "fabric/tcp_transport.h"
#include "fabric/transport.h"
#include "memory/guest_memory.h"
#include "vmm/node/cluster_flags.h"
#include "vmm/node/node_runtime.h"

namespace amalgam::vmm::node {

class ClusterNode {
 public:
  // Node 0, after the kernel is loaded and before any vCPU runs: connects to every peer (waits
  // up to --peer-timeout; FAILED_PRECONDITION names the node that did not come), starts the
  // runtime, moves the loaded image to the homes and registers guest RAM with userfaultfd.
  // With memory == null (memory nodes) it only connects and starts the runtime. Every memory
  // node announces its share of guest RAM (a Join) and node 0 refuses a cluster whose nodes
  // partition RAM differently (FAILED_PRECONDITION naming the node and both sizes).
  static absl::StatusOr<std::unique_ptr<ClusterNode>> Join(const ClusterFlags& flags,
                                                           uint64_t memory_bytes,
                                                           memory::GuestMemory* memory);
  ~ClusterNode();

  // Node 0, after every vCPU stopped: tells every peer to leave, then Stop()s.
  void Finish(const std::string& reason);
  // Stops the runtime and the transport, writes --metrics-out and the summary line. Idempotent.
  void Stop();

  // Memory nodes: true once node 0 said Leave (waits up to `timeout`).
  bool WaitForLeave(absl::Duration timeout) {
    return left_.WaitForNotificationWithTimeout(timeout);
  }

  // Whether the fabric link to `peer` is up right now (and the peer not declared lost).
  bool LinkUp(directory::NodeId peer) const;

  // Every node runs a fabric::PeerLivenessMonitor (heartbeats; a peer silent for 2 s or whose
  // link closed is lost). `on_lost` gets the first loss ("node 2: no frame for 2.0 s"), on the
  // monitor's thread, or at once if one happened already. Node 0 stops the guest with it.
  void OnPeerLost(std::function<void(const std::string& reason)> on_lost);
  // The first loss, if any.
  std::optional<std::string> lost_reason() const;

  NodeRuntime& runtime() { return *runtime_; }
  fabric::Transport& transport() { return *transport_; }

 private:
  uint64_t ShareBytes(directory::NodeId id) const;
  absl::Status CheckShares();
  ClusterNode(const ClusterFlags& flags, directory::StaticPartitionHomeMap homes)
      : flags_(flags), homes_(std::move(homes)) {}

  ClusterFlags flags_;
  directory::StaticPartitionHomeMap homes_;
  std::unique_ptr<fabric::Transport> transport_;
  fabric::TcpTransport* tcp_ = nullptr;  // transport_, when it is TCP
  std::unique_ptr<NodeRuntime> runtime_;
  std::unique_ptr<fabric::PeerLivenessMonitor> liveness_;
  mutable absl::Mutex lost_mu_;
  std::optional<std::string> lost_ ABSL_GUARDED_BY(lost_mu_);
  std::function<void(const std::string&)> on_lost_ ABSL_GUARDED_BY(lost_mu_);
  absl::Notification left_;
  bool stopped_ = false;
};

// `amalgam --node-id N` for N != 0: serves this node's share of guest RAM until node 0 leaves
// or SIGINT/SIGTERM, or until node 0's link has been down for 3 s after it was up or never came
// up within --peer-timeout (node 0 died or failed: exit 8). `args` are the non-cluster flags: only
// --memory is accepted. Returns the process exit status (0, or 2 for a usage error, 8 when node 0
// went away without a Leave).
int RunMemoryNode(const ClusterFlags& flags, const std::vector<std::string>& args);

// One line for stderr: what this node served and used (from NodeRuntime::Metrics()).
std::string SummaryLine(directory::NodeId self, const std::map<std::string, uint64_t>& m);

}  // namespace amalgam::vmm::node

#endif  // AMALGAM_VMM_NODE_CLUSTER_NODE_H_
