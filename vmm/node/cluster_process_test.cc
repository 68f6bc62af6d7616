// The real thing: 2 and 3 `amalgam` processes on loopback TCP run one guest (//guest:test_guest)
// whose RAM is partitioned across them. Checks the guest's verified result, the exit statuses,
// and every node's counters (--metrics-out) showing the pages it served.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "vmm/node/cluster_test_util.h"
#include "vmm/run_process_testutil.h"

namespace amalgam::vmm {
namespace {

using node::FreeLoopbackPort;
using node::LoopbackPeers;
using node::NodeArgs;
using node::TestClusterSpec;

std::string Amalgam() { return AmalgamBinary(); }
std::string Guest() { return TestGuestElf(); }

uint64_t Get(const std::map<std::string, uint64_t>& m, const std::string& name) {
  auto it = m.find(name);
  return it == m.end() ? 0 : it->second;
}

// The cluster key file every node of a test shares.
std::string WriteKey() {
  std::string key = TestTempPath("cluster.key");
  std::ofstream k(key, std::ios::trunc);
  k << "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";
  return key;
}

std::string TwoPeers() { return LoopbackPeers({FreeLoopbackPort(), FreeLoopbackPort()}); }

struct ClusterRun {
  ProcessResult boot;  // node 0
  std::vector<ProcessResult> memory_nodes;
  std::string serial;
  std::vector<std::map<std::string, uint64_t>> metrics;  // per node
};

// Starts memory nodes 1..n-1, then node 0 with `guest_flags`; waits for all of them.
ClusterRun RunCluster(int n, const std::string& memory, const std::string& node_memory,
                      const std::vector<std::string>& guest_flags) {
  TestClusterSpec spec;
  for (int i = 0; i < n; ++i) spec.ports.push_back(FreeLoopbackPort());
  spec.key_path = WriteKey();
  spec.memory = memory;
  spec.node_memory = node_memory;
  spec.metrics_stem = TestTempPath("metrics");
  spec.peer_timeout_s = 20;
  auto common = [&](int id) { return NodeArgs(spec, id); };
  ClusterRun run;
  run.memory_nodes.resize(n - 1);
  std::vector<std::thread> threads;
  for (int i = 1; i < n; ++i) {
    threads.emplace_back([&, i] { run.memory_nodes[i - 1] = RunProcess(common(i), {}, 120); });
  }
  std::string serial = TestTempPath("serial.txt");
  std::remove(serial.c_str());
  std::vector<std::string> a = common(0);
  a.insert(a.end(), {"--kernel", Guest(), "--serial-out", serial});
  a.insert(a.end(), guest_flags.begin(), guest_flags.end());
  run.boot = RunProcess(a, {}, 100);
  for (std::thread& t : threads) t.join();
  run.serial = ReadTextFile(serial);
  for (int i = 0; i < n; ++i) run.metrics.push_back(node::ReadMetricsFile(MetricsPath(spec, i)));
  return run;
}

void ExpectGuestPassed(const ClusterRun& r, const std::string& line) {
  INFO("node 0 stderr: " << r.boot.err);
  for (const ProcessResult& m : r.memory_nodes) INFO("memory node stderr: " << m.err);
  INFO("serial: " << r.serial);
  CHECK_FALSE(r.boot.timed_out);
  CHECK(r.serial.find(line) != std::string::npos);
  CHECK(r.serial.find("amalgam-guest: exit 0") != std::string::npos);
  CHECK(r.boot.exit_code == 1);  // debug-exit 0
  for (const ProcessResult& m : r.memory_nodes) {
    CHECK_FALSE(m.timed_out);
    CHECK(m.exit_code == 0);  // node 0 said Leave
    CHECK(m.err.find("amalgam: node ") != std::string::npos);
  }
  for (size_t i = 0; i < r.metrics.size(); ++i) {
    INFO("node " << i);
    CHECK(r.metrics[i].count("errors") == 0);
    // Every node with a share served pages it homes.
    if (Get(r.metrics[i], "home_pages") > 0) CHECK(Get(r.metrics[i], "home_PageRequest") > 0);
  }
  for (size_t i = 1; i < r.metrics.size(); ++i) {
    INFO("node " << i);
    CHECK(Get(r.metrics[i], "sent_msgs_PageGrant") > 0);
    CHECK(Get(r.metrics[i], "sent_msgs_PageGrant") == Get(r.metrics[i], "home_PageRequest"));
  }
  CHECK(Get(r.metrics[0], "faults_remote_home") > 0);
}

TEST_CASE("2 nodes: memtouch over all free RAM (60 of 64 MiB), 3/4 of the RAM homed on node 1") {
  ClusterRun r = RunCluster(2, "64M", "0=16M,1=48M", {"--cmdline", "memtouch mib=60"});
  ExpectGuestPassed(r, "memtouch: ok mib=60 pages=15360");
  CHECK(Get(r.metrics[0], "home_PageRequest") > 0);
  CHECK(Get(r.metrics[1], "home_pages") == 12288);
  CHECK(Get(r.metrics[0], "sent_msgs_Seed") == 0);  // the image sits in node 0's share
}

TEST_CASE("3 nodes: memtouch over all free RAM (60 of 64 MiB) split 8/28/28") {
  ClusterRun r = RunCluster(3, "64M", "0=8M,1=28M,2=28M", {"--cmdline", "memtouch mib=60"});
  ExpectGuestPassed(r, "memtouch: ok mib=60 pages=15360");
  CHECK(r.boot.err.find("amalgam: node 0: ") != std::string::npos);  // the summary line
}

TEST_CASE("node 0 holds at most --local-memory: it evicts to the homes and memtouch verifies") {
  ClusterRun r =
      RunCluster(2, "64M", "0=32M,1=32M", {"--cmdline", "memtouch mib=60", "--local-memory", "8M"});
  ExpectGuestPassed(r, "memtouch: ok mib=60 pages=15360");
  CHECK(Get(r.metrics[0], "evictions_modified") > 0);
  CHECK(Get(r.metrics[1], "home_Writeback") > 0);  // evicted pages came home with their data
  CHECK(Get(r.metrics[0], "cache_pages_M") + Get(r.metrics[0], "cache_pages_S") <= 2048 + 64);
}

TEST_CASE("smp on 2 vCPUs: the shared counter is exact while pages are evicted and refetched") {
  ClusterRun r =
      RunCluster(2, "32M", "0=0,1=32M",
                 {"--cmdline", "smp cpus=2 iters=20000", "--vcpus", "2", "--local-memory", "64K"});
  ExpectGuestPassed(r, "smp: ok cpus=2 counter=40000");
  CHECK(Get(r.metrics[0], "home_pages") == 0);  // every page lives on node 1
  CHECK(Get(r.metrics[0], "evictions_modified") + Get(r.metrics[0], "evictions_shared") > 0);
}

TEST_CASE("3 nodes: smp on 2 vCPUs, low RAM on node 1, the image and the rest on node 2") {
  ClusterRun r = RunCluster(3, "32M", "0=0,1=1M,2=31M",
                            {"--cmdline", "smp cpus=2 iters=20000", "--vcpus", "2"});
  ExpectGuestPassed(r, "smp: ok cpus=2 counter=40000");
}

TEST_CASE("nodes that partition RAM differently are refused before the guest starts") {
  const std::string key = WriteKey();
  const std::string peers = TwoPeers();
  ProcessResult memory_node;
  std::thread t([&] {
    memory_node =
        RunProcess({Amalgam(), "--node-id", "1", "--peers", peers, "--cluster-key", key, "--memory",
                    "32M", "--node-memory", "0=16M,1=16M", "--peer-timeout", "20"},
                   {}, 60);
  });
  ProcessResult boot = RunProcess(
      {Amalgam(), "--node-id", "0", "--peers", peers, "--cluster-key", key, "--memory", "32M",
       "--node-memory", "0=8M,1=24M", "--kernel", Guest(), "--peer-timeout", "20"},
      {}, 60);
  t.join();
  INFO(boot.err);
  INFO(memory_node.err);
  CHECK(boot.exit_code == 2);
  CHECK(boot.err.find("node 1 homes 16 MiB") != std::string::npos);
  CHECK(boot.err.find("give it 24 MiB") != std::string::npos);
  CHECK(memory_node.exit_code == 8);  // node 0 went away without a Leave
}

TEST_CASE("node 0 names the peer that never came") {
  const std::string key = WriteKey();
  const std::string peers = TwoPeers();
  ProcessResult r = RunProcess({Amalgam(), "--node-id", "0", "--peers", peers, "--cluster-key", key,
                                "--memory", "32M", "--kernel", Guest(), "--peer-timeout", "1"});
  INFO(r.err);
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("node 1 (127.0.0.1:") != std::string::npos);
  CHECK(r.err.find("did not connect") != std::string::npos);

  ProcessResult nokey = RunProcess(
      {Amalgam(), "--node-id", "0", "--peers", peers, "--memory", "32M", "--kernel", Guest()});
  CHECK(nokey.exit_code == 2);
  CHECK(nokey.err.find("--cluster-key") != std::string::npos);

  ProcessResult sum = RunProcess({Amalgam(), "--node-id", "1", "--peers", peers, "--cluster-key",
                                  key, "--memory", "32M", "--node-memory", "0=8M,1=8M"});
  CHECK(sum.exit_code == 2);
  CHECK(sum.err.find("sum to 16 MiB") != std::string::npos);
}

}  // namespace
}  // namespace amalgam::vmm
