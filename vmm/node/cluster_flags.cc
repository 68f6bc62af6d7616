#include "vmm/node/cluster_flags.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "fabric/dpdk/memif_cluster.h"
#include "memory/guest_memory.h"
#include "vmm/config/vm_config.h"

namespace amalgam::vmm::node {
namespace {

constexpr uint64_t kPage = 4096;

absl::StatusOr<directory::NodeId> ParseNodeId(absl::string_view text, const char* flag) {
  uint32_t id = 0;
  if (!absl::SimpleAtoi(text, &id) || id >= directory::kMaxNodes) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, ": node id '", text, "' must be a number from 0 to ", directory::kMaxNodes - 1));
  }
  return id;
}

// "0=A,1=B" -> {0: "A", 1: "B"}; ids must be unique.
absl::StatusOr<std::map<directory::NodeId, std::string>> ParseIdList(absl::string_view text,
                                                                     const char* flag) {
  std::map<directory::NodeId, std::string> out;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(item, '=');
    if (kv.second.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": '", item, "' must look like ID=VALUE (e.g. 0=127.0.0.1:7000)"));
    }
    absl::StatusOr<directory::NodeId> id = ParseNodeId(kv.first, flag);
    if (!id.ok()) return id.status();
    if (!out.emplace(*id, std::string(kv.second)).second) {
      return absl::InvalidArgumentError(absl::StrCat(flag, ": node ", *id, " is listed twice"));
    }
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(flag, " is empty"));
  return out;
}

}  // namespace

absl::StatusOr<ClusterFlags> ExtractClusterFlags(std::vector<std::string>* args) {
  static const char* kFlags[] = {"node-id",      "peers",  "cluster-key", "node-memory",
                                 "local-memory", "fabric", "metrics-out", "peer-timeout"};
  ClusterFlags f;
  std::map<std::string, std::string> given;
  std::vector<std::string> rest;
  for (size_t i = 0; i < args->size(); ++i) {
    const std::string& a = (*args)[i];
    std::string name, value;
    bool has_value = false;
    if (a.rfind("--", 0) == 0) {
      size_t eq = a.find('=');
      name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      if (eq != std::string::npos) {
        value = a.substr(eq + 1);
        has_value = true;
      }
    }
    if (std::find(std::begin(kFlags), std::end(kFlags), name) == std::end(kFlags)) {
      rest.push_back(a);
      continue;
    }
    if (!has_value) {
      if (i + 1 >= args->size()) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      }
      value = (*args)[++i];
    }
    given[name] = value;
  }
  *args = std::move(rest);
  if (given.empty()) return f;
  if (!given.count("node-id")) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", given.begin()->first,
                     " is a cluster flag: give --node-id N (and --peers, --cluster-key) too"));
  }
  f.enabled = true;
  absl::StatusOr<directory::NodeId> id = ParseNodeId(given["node-id"], "--node-id");
  if (!id.ok()) return id.status();
  f.node_id = *id;
  if (!given.count("peers")) {
    return absl::InvalidArgumentError(
        "--peers is required with --node-id: every member as ID=HOST:PORT, this node included "
        "(its listen address), e.g. --peers 0=127.0.0.1:7000,1=127.0.0.1:7001");
  }
  absl::StatusOr<std::map<directory::NodeId, std::string>> peers =
      ParseIdList(given["peers"], "--peers");
  if (!peers.ok()) return peers.status();
  f.peers = *peers;
  if (!f.peers.count(f.node_id)) {
    return absl::InvalidArgumentError(absl::StrCat("--peers must list this node too (", f.node_id,
                                                   "=HOST:PORT, its listen address)"));
  }
  if (!f.peers.count(0)) {
    return absl::InvalidArgumentError("--peers must list node 0, the node that runs the vCPUs");
  }
  if (f.peers.rbegin()->first + 1 != f.peers.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--peers: node ids must be 0..N-1 without gaps; got ", f.peers.size(),
                     " nodes up to id ", f.peers.rbegin()->first));
  }
  if (!given.count("cluster-key") || given["cluster-key"].empty()) {
    return absl::InvalidArgumentError(
        "--cluster-key FILE is required in cluster mode (the shared 32-byte key; "
        "create one with fabric_ping --gen-key FILE)");
  }
  f.cluster_key_file = given["cluster-key"];
  if (given.count("node-memory")) {
    absl::StatusOr<std::map<directory::NodeId, std::string>> shares =
        ParseIdList(given["node-memory"], "--node-memory");
    if (!shares.ok()) return shares.status();
    for (const auto& [node, text] : *shares) {
      absl::StatusOr<uint64_t> bytes = config::ParseMemorySize(text);
      if (!bytes.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--node-memory: node ", node, ": ", bytes.status().message()));
      }
      f.node_memory[node] = *bytes;
    }
  }
  if (given.count("local-memory")) {
    absl::StatusOr<uint64_t> bytes = config::ParseMemorySize(given["local-memory"]);
    if (!bytes.ok() || *bytes < 16 * kPage) {
      return absl::InvalidArgumentError(
          "--local-memory: give a size of at least 64K (e.g. 16M): how much guest RAM node 0 "
          "may hold resident before it evicts pages to their homes");
    }
    f.local_memory_bytes = *bytes;
  }
  if (given.count("fabric")) {
    f.fabric = given["fabric"];
    absl::string_view spec = f.fabric;
    if (absl::ConsumePrefix(&spec, "dpdk-memif") && (spec.empty() || spec[0] == ':')) {
      absl::ConsumePrefix(&spec, ":");
      if (absl::StatusOr<fabric::MemifClusterOptions> mo = fabric::ParseMemifClusterSpec(spec);
          !mo.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("--fabric: ", mo.status().message()));
      }
    } else if (f.fabric != "tcp") {
      return absl::InvalidArgumentError(absl::StrCat("--fabric: unknown transport '", f.fabric,
                                                     "' (known: tcp, dpdk-memif[:SPEC])"));
    }
  }
  f.metrics_out = given.count("metrics-out") ? given["metrics-out"] : "";
  if (given.count("peer-timeout")) {
    int seconds = 0;
    if (!absl::SimpleAtoi(given["peer-timeout"], &seconds) || seconds <= 0) {
      return absl::InvalidArgumentError("--peer-timeout: give whole seconds > 0 (default 30)");
    }
    f.peer_timeout = absl::Seconds(seconds);
  }
  return f;
}

absl::StatusOr<directory::StaticPartitionHomeMap> PlanHomes(const ClusterFlags& flags,
                                                            uint64_t memory_bytes) {
  const uint32_t n = static_cast<uint32_t>(flags.peers.size());
  const uint64_t total_pages = memory_bytes / kPage;
  std::vector<uint64_t> shares(n, 0);
  if (flags.node_memory.empty()) {
    for (uint32_t i = 0; i < n; ++i) shares[i] = total_pages / n + (i < total_pages % n ? 1 : 0);
  } else {
    uint64_t sum = 0;
    for (uint32_t i = 0; i < n; ++i) {
      auto it = flags.node_memory.find(i);
      if (it == flags.node_memory.end()) {
        return absl::InvalidArgumentError(absl::StrCat("--node-memory has no share for node ", i,
                                                       " (every member of --peers "
                                                       "needs one, e.g. ",
                                                       i, "=32M)"));
      }
      if (it->second % kPage != 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("--node-memory: node ", i, "'s share must be a multiple of 4K"));
      }
      shares[i] = it->second / kPage;
      sum += it->second;
    }
    if (flags.node_memory.rbegin()->first >= n) {
      return absl::InvalidArgumentError(absl::StrCat("--node-memory names node ",
                                                     flags.node_memory.rbegin()->first,
                                                     ", which is not in --peers"));
    }
    if (sum != memory_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--node-memory shares sum to ", sum >> 20, " MiB (", sum, " bytes) but --memory is ",
          memory_bytes >> 20, " MiB (", memory_bytes, " bytes); make them equal"));
    }
  }
  // Walk guest RAM region by region (ranges never span a hole), handing out each share in turn.
  std::vector<directory::StaticPartitionHomeMap::Range> ranges;
  uint32_t node = 0;
  for (const memory::RegionSpec& r : memory::GuestMemory::X86Layout(memory_bytes)) {
    uint64_t page = r.start.value() / kPage;
    uint64_t left = r.size / kPage;
    while (left > 0) {
      while (node < n && shares[node] == 0) ++node;
      if (node >= n) break;
      uint64_t take = std::min(left, shares[node]);
      ranges.push_back({page, take, node});
      page += take;
      left -= take;
      shares[node] -= take;
    }
  }
  return directory::StaticPartitionHomeMap::Create(std::move(ranges), n);
}

std::string ClusterUsageText() {
  return R"(
cluster mode (one guest across several amalgam processes/machines):
  --node-id N         this node's id (0..63); node 0 loads the guest and runs the vCPUs,
                      the others only serve their share of guest RAM (no --kernel)
  --peers LIST        every member as ID=HOST:PORT, this node included (its listen address),
                      e.g. 0=10.0.0.1:7000,1=10.0.0.2:7000; ids 0..N-1
  --cluster-key FILE  the shared 32-byte key (64 hex digits); required
  --memory SIZE       guest RAM, the same on every node
  --node-memory LIST  each node's home share of guest RAM, e.g. 0=32M,1=96M; must sum to
                      --memory (default: an even split)
  --local-memory SIZE how much guest RAM node 0 may hold resident; beyond it, it evicts pages
                      to their homes (default: no limit)
  --fabric NAME       node-to-node transport: tcp (default), or dpdk-memif[:SPEC] for nodes on
                      one host (a DPDK memif pair per node pair; --peers then only names the
                      members), SPEC e.g. dir=/run/amalgam-c1,mtu=9000 (fabric/README_dpdk.md)
  --metrics-out FILE  write this node's counters ("name value" lines) when it exits
  --peer-timeout SEC  how long node 0 waits for every peer before the guest starts, and a
                      memory node for node 0 (default 30)
  Node 0's exit status is the guest's (below); a missing peer is status 2. Memory nodes exit 0
  when node 0 leaves (or on SIGINT/SIGTERM), 8 when node 0 never came or went away without
  leaving (link down 3 s). Every node sends heartbeats; node 0 stops the guest with status 8
  and "lost cluster node N: ..." when a peer is silent for 2 s or its link closed.
  Each node prints one summary line on stderr.
)";
}

}  // namespace amalgam::vmm::node
