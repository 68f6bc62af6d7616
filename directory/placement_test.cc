// CostModelPolicy decisions on scripted fault streams, and its exported statistics.
#include "directory/placement.h"

#include <catch2/catch.hpp>
#include <map>

namespace amalgam::directory {
namespace {

std::map<std::string, uint64_t> StatsOf(const PlacementPolicy& p) {
  std::map<std::string, uint64_t> m;
  for (const auto& [name, value] : p.Stats()) m[name] = value;
  return m;
}

RemoteFault Fault(uint32_t vcpu, NodeId node, PageNumber page, Access access, NodeId holder) {
  RemoteFault f;
  f.vcpu = vcpu;
  f.node = node;
  f.page = page;
  f.access = access;
  f.holder = holder;
  return f;
}

TEST_CASE("read faults replicate the page, however many there are") {
  CostModelPolicy p;
  for (int i = 0; i < 500; ++i) {
    CHECK(p.Decide(Fault(i % 4, i % 2, i % 7, Access::kRead, 3)) == Placement::kFetchPage);
  }
  auto s = StatsOf(p);
  CHECK(s["placement_faults_total"] == 500);
  CHECK(s["placement_read_replications_total"] == 500);
  CHECK(s["placement_migrate_total"] == 0);
}

TEST_CASE("a vCPU that keeps writing pages held by one node is pulled to that node") {
  CostModelPolicy::Options o;
  o.migrate_after_writes = 4;
  CostModelPolicy p(o);
  // vCPU 0 on node 0 writes distinct pages, all held by node 2.
  for (int page = 0; page < 3; ++page) {
    CHECK(p.Decide(Fault(0, 0, page, Access::kWrite, 2)) == Placement::kFetchPage);
  }
  CHECK(p.Decide(Fault(0, 0, 3, Access::kWrite, 2)) == Placement::kMigrateVcpu);
  auto s = StatsOf(p);
  CHECK(s["placement_affinity_migrations_total"] == 1);
  CHECK(s["placement_migrate_total"] == 1);
  CHECK(s["placement_fetch_total"] == 3);
}

TEST_CASE("writes spread over several holders do not pull the vCPU") {
  CostModelPolicy::Options o;
  o.migrate_after_writes = 4;
  CostModelPolicy p(o);
  for (int page = 0; page < 9; ++page) {
    CHECK(p.Decide(Fault(0, 0, page, Access::kWrite, 1 + page % 3)) == Placement::kFetchPage);
  }
  CHECK(StatsOf(p)["placement_migrate_total"] == 0);
}

TEST_CASE("ping-pong between two writers on different nodes is detected and damped") {
  CostModelPolicy::Options o;
  o.pingpong_switches = 3;
  o.migrate_after_writes = 1000;  // isolate the ping-pong rule
  o.migrate_cooldown = 10;
  CostModelPolicy p(o);
  // vCPU 0 on node 0 and vCPU 1 on node 1 alternate writes to page 42.
  std::vector<Placement> d;
  for (int i = 0; i < 8; ++i) {
    uint32_t v = i % 2;
    d.push_back(p.Decide(Fault(v, v, 42, Access::kWrite, 1 - v)));
  }
  // Switches 1, 2: fetch. Switch 3 (fault 4, vCPU 1): ping-pong -> migrate vCPU 1 to node 0.
  CHECK(d[0] == Placement::kFetchPage);
  CHECK(d[1] == Placement::kFetchPage);
  CHECK(d[2] == Placement::kFetchPage);
  CHECK(d[3] == Placement::kMigrateVcpu);
  auto s = StatsOf(p);
  CHECK(s["placement_pingpong_detections_total"] >= 1);
  CHECK(s["placement_migrate_total"] >= 1);
}

TEST_CASE("a vCPU that just migrated is not moved again during its cooldown") {
  CostModelPolicy::Options o;
  o.migrate_after_writes = 2;
  o.migrate_cooldown = 5;
  CostModelPolicy p(o);
  CHECK(p.Decide(Fault(0, 0, 1, Access::kWrite, 2)) == Placement::kFetchPage);
  CHECK(p.Decide(Fault(0, 0, 2, Access::kWrite, 2)) == Placement::kMigrateVcpu);
  // Now on node 2, its writes land on pages held by node 3: damped for the cooldown.
  CHECK(p.Decide(Fault(0, 2, 3, Access::kWrite, 3)) == Placement::kFetchPage);
  CHECK(p.Decide(Fault(0, 2, 4, Access::kWrite, 3)) == Placement::kFetchPage);
  CHECK(StatsOf(p)["placement_migrations_damped_total"] >= 1);
  // After the cooldown the pull works again.
  Placement last = Placement::kFetchPage;
  for (int page = 5; page < 12 && last == Placement::kFetchPage; ++page) {
    last = p.Decide(Fault(0, 2, page, Access::kWrite, 3));
  }
  CHECK(last == Placement::kMigrateVcpu);
}

TEST_CASE("faults on pages with no remote holder always fetch") {
  CostModelPolicy::Options o;
  o.migrate_after_writes = 1;
  CostModelPolicy p(o);
  for (int i = 0; i < 10; ++i) {
    CHECK(p.Decide(Fault(0, 1, i, Access::kWrite, kNoNode)) == Placement::kFetchPage);
    CHECK(p.Decide(Fault(0, 1, i, Access::kWrite, 1)) == Placement::kFetchPage);  // local
  }
}

TEST_CASE("history decays: old write affinity is forgotten") {
  CostModelPolicy::Options o;
  o.migrate_after_writes = 4;
  o.decay_every = 4;
  CostModelPolicy p(o);
  // Three writes towards node 2, then many reads age the vCPU's history.
  for (int page = 0; page < 3; ++page) p.Decide(Fault(0, 0, page, Access::kWrite, 2));
  for (int i = 0; i < 16; ++i) p.Decide(Fault(0, 0, 100 + i, Access::kRead, 2));
  CHECK(p.Decide(Fault(0, 0, 50, Access::kWrite, 2)) == Placement::kFetchPage);
}

}  // namespace
}  // namespace amalgam::directory
