// Placement policy: on a remote fault, fetch the page to the vCPU or migrate the vCPU to the
// node that holds the page. Decided from recent fault history; the runtime then acts on it.
//
// Thread-safety: not thread-safe; one owner (the node's fault loop) calls it.
// Ownership: plain value state, no borrowed pointers.
#ifndef AMALGAM_DIRECTORY_PLACEMENT_H_
#define AMALGAM_DIRECTORY_PLACEMENT_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "directory/protocol.h"

namespace amalgam::directory {

struct RemoteFault {
  uint32_t vcpu = 0;  // guest vCPU index (APIC id order)
  NodeId node = 0;    // where the vCPU runs now
  PageNumber page = 0;
  Access access = Access::kRead;
  NodeId holder = kNoNode;  // the node holding the valid copy (owner), kNoNode if only the home
};

enum class Placement : uint8_t { kFetchPage, kMigrateVcpu };

class PlacementPolicy {
 public:
  virtual ~PlacementPolicy() = default;
  // Called once per remote fault; updates the history and returns what to do. kMigrateVcpu
  // means: move fault.vcpu to fault.holder.
  virtual Placement Decide(const RemoteFault& fault) = 0;
  // Counters for metrics, as (name, value); names are stable, prefixed "placement_".
  virtual std::vector<std::pair<std::string, uint64_t>> Stats() const = 0;
};

// First cost model:
//  - read faults replicate the page (fetch): readers never invalidate each other;
//  - a vCPU whose recent write faults keep landing on pages held by one node is pulled to that
//    node (its writes would otherwise move every page one by one);
//  - a page whose writers alternate between vCPUs on different nodes is ping-ponging: the
//    faulting writer is co-located with the page's holder (migrate) to stop the bouncing;
//  - damping: after a migration a vCPU stays put for `migrate_cooldown` of its faults, so
//    vCPUs do not ping-pong instead of pages.
// All history decays: counters halve every `decay_every` faults of the page or vCPU.
class CostModelPolicy : public PlacementPolicy {
 public:
  struct Options {
    uint32_t migrate_after_writes = 8;  // write faults towards one node before moving the vCPU
    uint32_t pingpong_switches = 4;     // writer changes (across nodes) that mark ping-pong
    uint32_t migrate_cooldown = 64;     // faults of a vCPU after its migration before another
    uint32_t decay_every = 64;          // faults between halvings of a history's counters
  };
  CostModelPolicy() : CostModelPolicy(Options{}) {}
  explicit CostModelPolicy(Options options) : options_(options) {}

  Placement Decide(const RemoteFault& fault) override;
  std::vector<std::pair<std::string, uint64_t>> Stats() const override;

 private:
  struct PageHistory {
    uint32_t reads = 0;
    uint32_t writes = 0;
    uint32_t writer_switches = 0;  // last writer changed to a vCPU on another node
    uint32_t last_writer = UINT32_MAX;
    NodeId last_writer_node = kNoNode;
    uint32_t events = 0;
  };
  struct VcpuHistory {
    absl::flat_hash_map<NodeId, uint32_t> writes_towards;  // write faults per holder node
    uint32_t events = 0;
    uint32_t cooldown = 0;  // faults left before it may migrate again
  };
  Placement Migrate(VcpuHistory& v);

  Options options_;
  absl::flat_hash_map<PageNumber, PageHistory> pages_;
  absl::flat_hash_map<uint32_t, VcpuHistory> vcpus_;
  uint64_t faults_ = 0, fetches_ = 0, migrations_ = 0, read_replications_ = 0;
  uint64_t pingpong_detections_ = 0, affinity_migrations_ = 0, damped_ = 0;
};

}  // namespace amalgam::directory

#endif  // AMALGAM_DIRECTORY_PLACEMENT_H_
