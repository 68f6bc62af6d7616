// Helpers for tests that run `amalgam` cluster nodes as processes: a free loopback port for
// --peers and the --metrics-out file as a map. Thread-safety: reentrant. Test-only.
#ifndef AMALGAM_VMM_NODE_CLUSTER_TEST_UTIL_H_
#define AMALGAM_VMM_NODE_CLUSTER_TEST_UTIL_H_

#include <cstdint>
#include <map>
#include <string>

namespace amalgam::vmm::node {

// A loopback TCP port nobody listens on right now (-1 if none could be bound).
int FreeLoopbackPort();
// "name value" lines of a --metrics-out file (empty when the file is missing).
std::map<std::string, uint64_t> ReadMetricsFile(const std::string& path);

}  // namespace amalgam::vmm::node

#endif  // AMALGAM_VMM_NODE_CLUSTER_TEST_UTIL_H_
