// Helpers for tests that run `amalgam` cluster nodes as processes: a free loopback port for
// --peers, the argv of one node, and the --metrics-out file as a map. Thread-safety: reentrant.
// Test-only.
#ifndef AMALGAM_VMM_NODE_CLUSTER_TEST_UTIL_H_
#define AMALGAM_VMM_NODE_CLUSTER_TEST_UTIL_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace amalgam::vmm::node {

// A loopback TCP port nobody listens on right now (-1 if none could be bound).
int FreeLoopbackPort();
// What every node of one test cluster is started with.
struct TestClusterSpec {
  std::vector<int> ports;    // node i listens on 127.0.0.1:ports[i]
  std::string key_path;      // --cluster-key
  std::string memory;        // --memory
  std::string node_memory;   // --node-memory ("" = the default even split)
  std::string fabric;        // --fabric ("" = tcp)
  std::string metrics_stem;  // node i writes --metrics-out <stem><i>.txt
  int peer_timeout_s = 30;
};
// "0=127.0.0.1:P0,1=127.0.0.1:P1,..."
std::string LoopbackPeers(const std::vector<int>& ports);
// The amalgam argv (binary first) of node `id`; node 0's guest flags are the caller's to add.
std::vector<std::string> NodeArgs(const TestClusterSpec& spec, int id);
std::string MetricsPath(const TestClusterSpec& spec, int id);

// "name value" lines of a --metrics-out file (empty when the file is missing).
std::map<std::string, uint64_t> ReadMetricsFile(const std::string& path);

}  // namespace amalgam::vmm::node

#endif  // AMALGAM_VMM_NODE_CLUSTER_TEST_UTIL_H_
