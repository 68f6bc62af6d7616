// The remote side of the node benchmarks, each in a child process: a memory-only NodeRuntime node
// over TcpTransport that homes pages and times its service of each request, and the raw TCP
// ping-pong floor (bench/fabric_tcp_bench, no amalgam code). Benchmarks only.
// Thread-safety: call from a single-threaded parent (they fork). Ownership: HomeNode owns the
// child until Finish().
#ifndef AMALGAM_BENCH_NODE_HOME_NODE_H_
#define AMALGAM_BENCH_NODE_HOME_NODE_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "directory/home_map.h"
#include "fabric/cluster_key.h"
#include "fabric/tcp_transport.h"
#include "vmm/node/node_runtime.h"

namespace amalgam::bench {

class HomeNode {
 public:
  // Forks node `self` of `homes` (no guest memory); it listens on 127.0.0.1 (port()) and serves
  // until a Leave arrives. Exits the benchmark with a message if the child does not start.
  HomeNode(const fabric::FrameKey& key, const directory::StaticPartitionHomeMap& homes,
           directory::NodeId self);
  int port() const { return port_; }
  // Node 0's TcpTransport, its link to this node up (exits the benchmark if it does not come up).
  std::unique_ptr<fabric::TcpTransport> DialAsNode0() const;
  // Tells the child to finish (a Leave from node 0's runtime).
  void Leave(vmm::node::NodeRuntime& node0) const;
  // After the parent sent Leave: waits for the child and returns, per PageRequest it served in
  // order, microseconds from its arrival (Receive returned) to the PageGrant sent.
  std::vector<double> Finish();

 private:
  const fabric::FrameKey key_;
  const directory::NodeId self_;
  pid_t pid_ = -1;
  int port_ = -1;
  int result_fd_ = -1;
};

// Appends `n` round trips (16-byte request, 4 KiB reply) over a plain TCP socket to a child
// process, in microseconds.
void RawTcpFloor(uint64_t n, std::vector<double>* out);

}  // namespace amalgam::bench

#endif  // AMALGAM_BENCH_NODE_HOME_NODE_H_
