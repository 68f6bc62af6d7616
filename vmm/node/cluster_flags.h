// The `amalgam` command line of a cluster node: the flags that make a process one node of a
// distributed guest, their parsing (picked out of argv before vmm/config sees the rest), the
// --help section, and the static partition of guest RAM onto nodes (--node-memory).
// Thread-safety: pure functions over value types.
#ifndef AMALGAM_VMM_NODE_CLUSTER_FLAGS_H_
#define AMALGAM_VMM_NODE_CLUSTER_FLAGS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "directory/home_map.h"

namespace amalgam::vmm::node {

struct ClusterFlags {
  bool enabled = false;  // --node-id was given
  directory::NodeId node_id = 0;
  std::map<directory::NodeId, std::string> peers;  // every member, self included: HOST:PORT
  std::string cluster_key_file;
  std::map<directory::NodeId, uint64_t> node_memory;  // bytes of guest RAM each node homes
  uint64_t local_memory_bytes = 0;                    // 0: node 0 may hold all RAM resident
  std::string fabric = "tcp";
  std::string metrics_out;  // empty: no file
  absl::Duration peer_timeout = absl::Seconds(30);
};

// Removes the cluster flags (`--flag value` or `--flag=value`) from `args` and parses them.
// INVALID_ARGUMENT names the flag and the fix. Without --node-id no other cluster flag may be
// given. Checks that need --memory are in PlanHomes.
absl::StatusOr<ClusterFlags> ExtractClusterFlags(std::vector<std::string>* args);

// Every node's share of guest RAM: --node-memory, or an even split of `memory_bytes` (in pages)
// when it was not given. The shares must cover every member of --peers, be page multiples and
// sum to `memory_bytes`. Pages are assigned in node-id order over guest RAM as
// memory::GuestMemory::X86Layout(memory_bytes) lays it out.
absl::StatusOr<directory::StaticPartitionHomeMap> PlanHomes(const ClusterFlags& flags,
                                                            uint64_t memory_bytes);

// The --help section for the cluster flags.
std::string ClusterUsageText();

}  // namespace amalgam::vmm::node

#endif  // AMALGAM_VMM_NODE_CLUSTER_FLAGS_H_
