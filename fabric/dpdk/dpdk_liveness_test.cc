// PeerLivenessMonitor over DPDK: a 3-node memif cluster (three processes), each node running
// the monitor fed by its receive loop; node 2 is SIGKILLed and both survivors report it lost,
// naming it, while they keep seeing each other.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <string>

#include "absl/strings/match.h"
#include "fabric/dpdk/dpdk_test_util.h"
#include "fabric/dpdk/memif_cluster.h"
#include "fabric/peer_liveness.h"

namespace amalgam::fabric {
namespace {

using testing::NodeReport;

// Runs one node until a peer is declared lost (the report's error holds the first reason and
// `pages` how many losses) or `seconds` pass. Writes one byte to `ready_fd` once it has heard
// heartbeats from every peer.
NodeReport RunMonitoredNode(NodeId self, const std::vector<NodeId>& all, const FrameKey& key,
                            const MemifClusterOptions& mo, int ready_fd, int seconds) {
  NodeReport r;
  auto t = MakeDpdkMemifTransport(self, all, key, mo);
  if (!t.ok()) {
    std::snprintf(r.error, sizeof(r.error), "node %u: %s", self, t.status().ToString().c_str());
    return r;
  }
  LivenessOptions lo;
  lo.interval = absl::Milliseconds(50);
  lo.timeout = absl::Seconds(8);
  lo.link_down_grace = absl::Milliseconds(300);
  std::atomic<int> losses{0};
  std::string first_reason;
  absl::Mutex mu;
  PeerLivenessMonitor monitor(t->get(), all, lo, [&](const PeerLoss& loss) {
    absl::MutexLock l(&mu);
    if (losses++ == 0) first_reason = loss.reason;
  });
  monitor.Start();
  std::map<NodeId, int> heard;
  bool ready = false;
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (losses == 0 && std::chrono::steady_clock::now() < end) {
    auto m = (*t)->Receive(absl::Milliseconds(50));
    if (!m.ok()) continue;
    if (monitor.Observe(*m)) ++heard[m->source()];
    if (!ready && heard.size() == all.size() - 1 && ready_fd >= 0) {
      ready = (write(ready_fd, "r", 1) == 1);
    }
  }
  // Keep receiving a little so the survivors also see each other after the loss.
  for (int i = 0; i < 10; ++i) {
    auto m = (*t)->Receive(absl::Milliseconds(50));
    if (m.ok()) monitor.Observe(*m);
  }
  monitor.Stop();
  absl::MutexLock l(&mu);
  r.pages = static_cast<uint64_t>(losses.load());
  std::snprintf(r.error, sizeof(r.error), "%s", first_reason.c_str());
  for (NodeId n : all) {
    if (n != self && monitor.IsLost(n)) r.first_page |= uint64_t{1} << n;  // bit set: lost
  }
  r.ok = ready ? 1 : 0;
  return r;
}

TEST_CASE("dpdk memif, 3 processes: a SIGKILLed node is reported lost by both others") {
  const std::vector<NodeId> all = {0, 1, 2};
  FrameKey key = FrameKey::Generate();
  MemifClusterOptions mo;
  mo.socket_dir = testing::ShortTempDir();
  int ready[2];
  REQUIRE(pipe(ready) == 0);
  std::vector<testing::Child> nodes;
  for (NodeId self : all) {
    nodes.push_back(testing::ForkNode([&, self] {
      close(ready[0]);
      MemifClusterOptions o = mo;
      o.lcore = static_cast<int>(self % 2);
      return RunMonitoredNode(self, all, key, o, ready[1], self == 2 ? 120 : 60);
    }));
  }
  close(ready[1]);
  // All three have heard heartbeats from both of their peers.
  int got = 0;
  char c;
  while (got < 3 && read(ready[0], &c, 1) == 1) ++got;
  close(ready[0]);
  kill(nodes[2].pid, SIGKILL);
  NodeReport n2 = testing::WaitNode(nodes[2], std::chrono::seconds(5));
  NodeReport n0 = testing::WaitNode(nodes[0], std::chrono::seconds(90));
  NodeReport n1 = testing::WaitNode(nodes[1], std::chrono::seconds(30));
  rmdir(mo.socket_dir.c_str());
  REQUIRE(got == 3);
  for (const NodeReport* r : {&n0, &n1}) {
    INFO(r->error);
    CHECK(r->ok == 1);
    CHECK(r->pages == 1);               // exactly one loss...
    CHECK(r->first_page == (1u << 2));  // ...and it is node 2
    CHECK(absl::StartsWith(r->error, "node 2: "));
    CHECK((absl::StrContains(r->error, "connection closed") ||
           absl::StrContains(r->error, "no frame for")));
    std::printf("survivor reports: %s\n", r->error);
  }
}

}  // namespace
}  // namespace amalgam::fabric
