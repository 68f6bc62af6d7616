#include "directory/placement.h"

namespace amalgam::directory {

Placement CostModelPolicy::Migrate(VcpuHistory& v) {
  ++migrations_;
  v.cooldown = options_.migrate_cooldown;
  v.writes_towards.clear();  // its history was about the node it is leaving
  return Placement::kMigrateVcpu;
}

Placement CostModelPolicy::Decide(const RemoteFault& f) {
  ++faults_;
  PageHistory& p = pages_[f.page];
  VcpuHistory& v = vcpus_[f.vcpu];
  if (++p.events >= options_.decay_every) {
    p.events = 0;
    p.reads /= 2;
    p.writes /= 2;
    p.writer_switches /= 2;
  }
  if (++v.events >= options_.decay_every) {
    v.events = 0;
    for (auto& [node, n] : v.writes_towards) n /= 2;
  }
  if (v.cooldown > 0) --v.cooldown;

  bool remote_holder = f.holder != kNoNode && f.holder != f.node;
  if (f.access == Access::kRead) {
    ++p.reads;
    ++fetches_;
    ++read_replications_;
    return Placement::kFetchPage;  // read-mostly data replicates
  }

  ++p.writes;
  bool pingpong = false;
  if (p.last_writer != UINT32_MAX && p.last_writer != f.vcpu && p.last_writer_node != f.node) {
    if (++p.writer_switches >= options_.pingpong_switches) pingpong = true;
  }
  p.last_writer = f.vcpu;
  p.last_writer_node = f.node;
  uint32_t towards = remote_holder ? ++v.writes_towards[f.holder] : 0;

  if (remote_holder && (pingpong || towards >= options_.migrate_after_writes)) {
    if (pingpong) ++pingpong_detections_;
    if (v.cooldown > 0) {
      ++damped_;
    } else {
      if (pingpong) {
        p.writer_switches = 0;  // co-located now: the bouncing stops
      } else {
        ++affinity_migrations_;
      }
      return Migrate(v);
    }
  }
  ++fetches_;
  return Placement::kFetchPage;
}

std::vector<std::pair<std::string, uint64_t>> CostModelPolicy::Stats() const {
  return {
      {"placement_faults_total", faults_},
      {"placement_fetch_total", fetches_},
      {"placement_migrate_total", migrations_},
      {"placement_read_replications_total", read_replications_},
      {"placement_pingpong_detections_total", pingpong_detections_},
      {"placement_affinity_migrations_total", affinity_migrations_},
      {"placement_migrations_damped_total", damped_},
      {"placement_tracked_pages", pages_.size()},
      {"placement_tracked_vcpus", vcpus_.size()},
  };
}

}  // namespace amalgam::directory
