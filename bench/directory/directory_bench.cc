// Directory operations per second for a realistic mix, single-threaded: 4 nodes, 16384 pages,
// 70% read accesses, 25% write accesses, 5% evictions, drawn uniformly over nodes and pages
// (with a hot set). Every access that misses runs the whole protocol to completion: the fault,
// every message through an in-memory FIFO, every hold release. Prints:
//  - workload ops/s (accesses + evictions, hits included) and directory calls/s,
//  - the same number of std::unordered_map lookups as a baseline, and the ratio.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <random>
#include <unordered_map>
#include <vector>

#include "directory/home_directory.h"
#include "directory/home_map.h"
#include "directory/node_cache.h"

namespace amalgam::directory {
namespace {

constexpr uint32_t kNodes = 4;
constexpr uint32_t kPages = 16384;
constexpr uint32_t kHotPages = 512;  // half the accesses go here (sharing and contention)
constexpr size_t kOps = 2'000'000;

struct Op {
  uint8_t node;
  uint8_t kind;  // 0 read, 1 write, 2 evict
  uint32_t page;
};

std::vector<Op> MakeOps() {
  std::mt19937_64 rng(42);
  std::vector<Op> ops(kOps);
  for (Op& op : ops) {
    op.node = rng() % kNodes;
    uint32_t r = rng() % 100;
    op.kind = r < 70 ? 0 : r < 95 ? 1 : 2;
    op.page = (rng() & 1) ? rng() % kHotPages : rng() % kPages;
  }
  return ops;
}

struct Cluster {
  explicit Cluster(const HomeMap* homes) {
    for (NodeId n = 0; n < kNodes; ++n) {
      caches.emplace_back(n, homes);
      dirs.emplace_back(n, homes);
    }
  }
  std::vector<NodeCache> caches;
  std::vector<HomeDirectory> dirs;
  std::deque<Message> wire;  // one FIFO: keeps every (src, dst) pair in order
  std::vector<Action> actions;
  uint64_t calls = 0, hits = 0, errors = 0;

  void Perform(NodeId node) {
    for (size_t i = 0; i < actions.size(); ++i) {
      const Action& a = actions[i];
      if (a.type == ActionType::kSend) {
        wire.push_back(a.message);
      } else if (a.type == ActionType::kWakeVcpus) {
        held.push_back({node, a.page});  // the vCPU retries at once; then the hold ends
      }
    }
    actions.clear();
  }

  void Drain() {
    while (!wire.empty() || !held.empty()) {
      if (!wire.empty()) {
        Message m = wire.front();
        wire.pop_front();
        bool home = m.type == MessageType::kPageRequest || m.type == MessageType::kInvalidateAck ||
                    m.type == MessageType::kWriteback;
        absl::Status s =
            home ? dirs[m.to].OnMessage(m, &actions) : caches[m.to].OnMessage(m, &actions);
        ++calls;
        errors += !s.ok();
        Perform(m.to);
      } else {
        auto [node, page] = held.front();
        held.pop_front();
        if (caches[node].IsHeld(page)) {
          errors += !caches[node].ReleaseHold(page, &actions).ok();
          ++calls;
          Perform(node);
        }
      }
    }
  }

  void Run(const Op& op) {
    NodeCache& c = caches[op.node];
    NodePageState s = c.StateOf(op.page);
    absl::Status st;
    if (op.kind == 2) {
      if ((s != NodePageState::kShared && s != NodePageState::kModified) || c.IsHeld(op.page)) {
        return;
      }
      st = c.Evict(op.page, &actions);
    } else {
      Access access = op.kind ? Access::kWrite : Access::kRead;
      bool hit = s == NodePageState::kModified || (s == NodePageState::kShared && !op.kind);
      if (hit) {
        ++hits;
        return;
      }
      st = c.OnFault(op.page, access, &actions);
    }
    ++calls;
    errors += !st.ok();
    Perform(op.node);
    Drain();
  }

  std::deque<std::pair<NodeId, PageNumber>> held;
};

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

int Main() {
  auto homes = StaticPartitionHomeMap::Even(kPages, kNodes);
  if (!homes.ok()) {
    std::fprintf(stderr, "%s\n", homes.status().ToString().c_str());
    return 1;
  }
  std::vector<Op> ops = MakeOps();

  Cluster cluster(&*homes);
  auto t0 = std::chrono::steady_clock::now();
  for (const Op& op : ops) cluster.Run(op);
  auto t1 = std::chrono::steady_clock::now();
  double dir_s = Seconds(t0, t1);

  // Baseline: one hash-map lookup (and update) per workload op, same access sequence.
  std::unordered_map<uint64_t, uint64_t> map;
  for (uint32_t n = 0; n < kNodes; ++n) {
    for (uint32_t p = 0; p < kPages; ++p) map[uint64_t{n} << 32 | p] = p;
  }
  uint64_t sum = 0;
  auto t2 = std::chrono::steady_clock::now();
  for (const Op& op : ops) {
    auto it = map.find(uint64_t{op.node} << 32 | op.page);
    sum += it->second;
    it->second += op.kind;
  }
  auto t3 = std::chrono::steady_clock::now();
  double map_s = Seconds(t2, t3);

  std::printf(
      "directory_bench: %u nodes, %u pages (%u hot), %zu ops (70%% read, 25%% write, "
      "5%% evict)\n",
      kNodes, kPages, kHotPages, ops.size());
  std::printf(
      "  directory: %.0f workload ops/s (%.1f ns/op), %llu hits, %llu directory calls "
      "(%.0f calls/s, %.1f ns/call), errors %llu\n",
      ops.size() / dir_s, dir_s * 1e9 / ops.size(), static_cast<unsigned long long>(cluster.hits),
      static_cast<unsigned long long>(cluster.calls), cluster.calls / dir_s,
      dir_s * 1e9 / cluster.calls, static_cast<unsigned long long>(cluster.errors));
  std::printf("  baseline std::unordered_map lookup: %.0f ops/s (%.1f ns/op) [checksum %llu]\n",
              ops.size() / map_s, map_s * 1e9 / ops.size(), static_cast<unsigned long long>(sum));
  std::printf("  ratio: a workload op costs %.1fx a hash-map lookup; a directory call %.1fx\n",
              dir_s / map_s, (dir_s / cluster.calls) / (map_s / ops.size()));
  return cluster.errors == 0 ? 0 : 1;
}

}  // namespace
}  // namespace amalgam::directory

int main() { return amalgam::directory::Main(); }
