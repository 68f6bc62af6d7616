// Two (or three) NodeRuntimes over the in-process fabric (real frames, MAC and decode), each with
// real GuestMemory and a real userfaultfd; host threads touch guest pages as vCPUs would.
#include "vmm/node/node_runtime.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "directory/home_map.h"
#include "fabric/inprocess_transport.h"
#include "memory/guest_memory.h"

namespace amalgam::vmm::node {
namespace {

constexpr uint64_t kPages = 64;
constexpr uint64_t kPage = 4096;

struct Node {
  std::unique_ptr<fabric::InProcessTransport> transport;
  std::unique_ptr<memory::GuestMemory> memory;
  std::unique_ptr<NodeRuntime> runtime;
  uint64_t* Word(uint64_t page, size_t index = 0) {
    return reinterpret_cast<uint64_t*>(memory->regions()[0].host_address() + page * kPage) + index;
  }
};

// `n` nodes; pages [0, 64) split evenly (node 0 homes the first slice). Node i gets
// `capacity[i]` resident pages (0: unlimited); node 0 seeds before starting if `seed`.
class Cluster {
 public:
  explicit Cluster(uint32_t n, std::vector<uint64_t> capacity = {},
                   const std::function<void(Node&)>& before_start = nullptr)
      : hub_(fabric::FrameKey::Generate()),
        homes_(*directory::StaticPartitionHomeMap::Even(kPages, n)) {
    nodes_.resize(n);
    for (uint32_t i = 0; i < n; ++i) {
      Node& node = nodes_[i];
      node.transport = *hub_.Connect(i);
      node.memory = *memory::GuestMemory::Create({{memory::GuestAddress(0), kPages * kPage}});
      NodeRuntimeOptions o;
      o.self = i;
      o.homes = &homes_;
      o.transport = node.transport.get();
      o.memory = node.memory.get();
      o.local_capacity_pages = i < capacity.size() ? capacity[i] : 0;
      auto rt = NodeRuntime::Create(o);
      REQUIRE(rt.ok());
      node.runtime = std::move(*rt);
    }
    if (before_start) {
      before_start(nodes_[0]);
      REQUIRE(nodes_[0].runtime->SeedFromGuestMemory().ok());
    }
    for (Node& node : nodes_) REQUIRE(node.runtime->Start().ok());
  }
  ~Cluster() {
    for (Node& node : nodes_) node.runtime->Stop();
  }
  Node& operator[](size_t i) { return nodes_[i]; }
  uint64_t Metric(size_t node, const std::string& name) {
    auto m = nodes_[node].runtime->Metrics();
    auto it = m.find(name);
    return it == m.end() ? 0 : it->second;
  }
  // The loop counts after the install that woke the faulting thread: a counter may lag the
  // access that caused it. Polls (up to 10 s) until it reads `want`; returns the last value.
  uint64_t MetricSoon(size_t node, const std::string& name, uint64_t want) {
    return Soon([&] { return Metric(node, name); }, want);
  }
  static uint64_t Soon(const std::function<uint64_t()>& read, uint64_t want) {
    uint64_t v = read();
    for (int i = 0; i < 1000 && v != want; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      v = read();
    }
    return v;
  }

 private:
  fabric::InProcessHub hub_;
  directory::StaticPartitionHomeMap homes_;
  std::vector<Node> nodes_;
};

// Runs `fn` on a fresh thread and joins it (guest accesses must not run on Catch2's thread
// while it holds locks; a blocked access here would hang the test, which the timeout reports).
template <typename F>
void OnThread(F fn) {
  std::thread t(fn);
  t.join();
}

TEST_CASE("pages move between a writer on node 0 and readers on node 1, values exact") {
  Cluster c(2);
  OnThread([&] {
    for (uint64_t p = 0; p < kPages; ++p) *c[0].Word(p, 7) = 0xA000 + p;
  });
  OnThread([&] {
    for (uint64_t p = 0; p < kPages; ++p) REQUIRE(*c[1].Word(p, 7) == 0xA000 + p);
  });
  // Node 1 now writes every page; node 0 must see it (its copies were invalidated).
  OnThread([&] {
    for (uint64_t p = 0; p < kPages; ++p) *c[1].Word(p, 9) = 0xB000 + p;
  });
  OnThread([&] {
    for (uint64_t p = 0; p < kPages; ++p) {
      REQUIRE(*c[0].Word(p, 7) == 0xA000 + p);
      REQUIRE(*c[0].Word(p, 9) == 0xB000 + p);
    }
  });
  // Untouched words stay zero; a never-written page reads zeros.
  CHECK(*c[1].Word(3, 100) == 0);
  CHECK(c.Metric(0, "faults_local_home") > 0);
  CHECK(c.Metric(0, "faults_remote_home") > 0);
  CHECK(c.Metric(1, "sent_msgs_PageGrant") > 0);  // node 1 served its home half to node 0
  CHECK(c.Metric(0, "sent_msgs_PageGrant") > 0);
  CHECK(c.Metric(0, "sent_msgs_Downgrade") + c.Metric(0, "sent_msgs_Invalidate") > 0);
  CHECK(c.Metric(1, "recv_msgs_Writeback") > 0);
  CHECK(c.Metric(1, "home_pages") == kPages / 2);
  CHECK(c.Metric(0, "errors") == 0);
  CHECK(c.Metric(1, "errors") == 0);
  CHECK(Cluster::Soon([&] { return c.Metric(0, "cache_pages_S") + c.Metric(0, "cache_pages_M"); },
                      kPages) == kPages);
}

TEST_CASE("seeded boot data reaches its home; every page starts Invalid on the boot node") {
  Cluster c(2, {}, [](Node& n0) {
    for (uint64_t p = 0; p < kPages; p += 5) *n0.Word(p, 1) = 0x5EED0000 + p;
  });
  CHECK(c.Metric(0, "sent_msgs_Seed") == 6);  // pages 35, 40, ..., 60 live on node 1
  CHECK(c.Metric(0, "seeded_local") == 7);    // pages 0, 5, ..., 30 on node 0
  // Seeds are ordered before node 0's own requests only; node 1 touches pages too, so wait
  // until its home has applied them.
  REQUIRE(c.MetricSoon(1, "home_pages_written", 6) == 6);
  OnThread([&] {
    for (uint64_t p = 0; p < kPages; ++p) {
      REQUIRE(*c[1].Word(p, 1) == (p % 5 == 0 ? 0x5EED0000 + p : 0));
      REQUIRE(*c[0].Word(p, 1) == (p % 5 == 0 ? 0x5EED0000 + p : 0));
    }
  });
  CHECK(c.Metric(0, "faults_local_home") + c.Metric(0, "faults_remote_home") >= kPages);
  CHECK(c.MetricSoon(1, "installs_data", 13) == 13);                    // seeded pages carry data
  CHECK(c.MetricSoon(1, "installs_zero", kPages - 13) == kPages - 13);  // the rest zero-fill
}

TEST_CASE("a node over its local capacity evicts to the homes and loses nothing") {
  Cluster c(2, {8, 0});
  OnThread([&] {
    for (uint64_t p = 0; p < kPages; ++p) *c[0].Word(p) = 0xC000 + p;
    for (uint64_t p = 0; p < kPages; ++p) REQUIRE(*c[0].Word(p) == 0xC000 + p);
  });
  OnThread([&] {
    for (uint64_t p = 0; p < kPages; ++p) REQUIRE(*c[1].Word(p) == 0xC000 + p);
  });
  CHECK(c.Metric(0, "evictions_modified") > 0);
  CHECK(c.Metric(0, "cache_pages_S") + c.Metric(0, "cache_pages_M") <= 8 + 1);
  CHECK(c.Metric(0, "errors") == 0);
  CHECK(c.Metric(1, "errors") == 0);
}

TEST_CASE("a counter incremented by threads on two nodes is exact while its page moves") {
  Cluster c(2);
  constexpr int kIters = 2000;
  // Page 40 is homed at node 1; a second counter shares page 3 (homed at node 0).
  auto worker = [&](int node) {
    for (int i = 0; i < kIters; ++i) {
      __atomic_fetch_add(c[node].Word(40, 0), 1, __ATOMIC_SEQ_CST);
      __atomic_fetch_add(c[node].Word(3, 1), 1, __ATOMIC_SEQ_CST);
    }
  };
  std::thread a(worker, 0), b(worker, 1);
  a.join();
  b.join();
  OnThread([&] {
    CHECK(*c[0].Word(40, 0) == 2 * kIters);
    CHECK(*c[1].Word(3, 1) == 2 * kIters);
  });
  CHECK(c.Metric(0, "errors") == 0);
  CHECK(c.Metric(1, "errors") == 0);
}

TEST_CASE("three nodes: each serves its home third") {
  Cluster c(3);
  OnThread([&] {
    for (uint64_t p = 0; p < kPages; ++p) *c[0].Word(p, 2) = p * 3;
  });
  OnThread([&] {
    for (uint64_t p = 0; p < kPages; ++p) REQUIRE(*c[2].Word(p, 2) == p * 3);
  });
  for (size_t n = 0; n < 3; ++n) CHECK(c.Metric(n, "home_PageRequest") > 0);
  CHECK(c.Metric(1, "sent_msgs_PageGrant") > 0);
  CHECK(c.Metric(2, "sent_msgs_Downgrade") > 0);
}

TEST_CASE("trace reports a remote read fault's steps in order, with times") {
  fabric::InProcessHub hub(fabric::FrameKey::Generate());
  auto homes = *directory::StaticPartitionHomeMap::Even(kPages, 2);
  struct Step {
    TracePoint point;
    directory::PageNumber page;
    int64_t ns;
  };
  std::vector<Step> steps;  // written by node 0's loop thread, read after Stop()
  Node n[2];
  for (uint32_t i = 0; i < 2; ++i) {
    n[i].transport = *hub.Connect(i);
    n[i].memory = *memory::GuestMemory::Create({{memory::GuestAddress(0), kPages * kPage}});
    NodeRuntimeOptions o;
    o.self = i;
    o.homes = &homes;
    o.transport = n[i].transport.get();
    o.memory = n[i].memory.get();
    if (i == 0) {
      o.trace = [&steps](TracePoint p, directory::PageNumber page, int64_t ns) {
        steps.push_back({p, page, ns});
      };
    }
    n[i].runtime = *NodeRuntime::Create(o);
  }
  for (Node& node : n) REQUIRE(node.runtime->Start().ok());
  OnThread([&] { CHECK(*n[0].Word(40, 3) == 0); });  // page 40 is homed at node 1
  for (Node& node : n) node.runtime->Stop();
  std::vector<TracePoint> points;
  for (const Step& s : steps) {
    CHECK(s.page == 40);
    CHECK(s.ns > 0);
    points.push_back(s.point);
  }
  REQUIRE(points == std::vector<TracePoint>{TracePoint::kFaultRead, TracePoint::kFaultLoop,
                                            TracePoint::kInboundLoop, TracePoint::kResolved});
  for (size_t i = 1; i < steps.size(); ++i) CHECK(steps[i].ns >= steps[i - 1].ns);
}

}  // namespace
}  // namespace amalgam::vmm::node
