#include "fabric/dpdk/memif_cluster.h"

#include <sys/un.h>

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace amalgam::fabric {
namespace {

constexpr char kSpecKeys[] = "dir, mtu, lcore, mbufs, link_timeout_s";

absl::Status BadSpec(absl::string_view item, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("memif cluster spec item '", item, "': ", why, " (keys: ", kSpecKeys, ")"));
}

}  // namespace

absl::StatusOr<MemifClusterOptions> ParseMemifClusterSpec(absl::string_view spec) {
  MemifClusterOptions o;
  for (absl::string_view item : absl::StrSplit(spec, ',', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(item, absl::MaxSplits('=', 1));
    const absl::string_view key = kv.first, value = kv.second;
    if (value.empty()) return BadSpec(item, "expected key=value");
    uint32_t n = 0;
    if (key == "dir") {
      o.socket_dir = std::string(value);
    } else if (key == "mtu") {
      if (!absl::SimpleAtoi(value, &n) || (n != 1500 && n != 9000)) {
        return BadSpec(item, "mtu must be 1500 or 9000");
      }
      o.mtu = n;
    } else if (key == "lcore") {
      if (!absl::SimpleAtoi(value, &n) || n > 1023) return BadSpec(item, "lcore must be 0..1023");
      o.lcore = static_cast<int>(n);
    } else if (key == "mbufs") {
      if (!absl::SimpleAtoi(value, &n) || n < 2047) return BadSpec(item, "mbufs must be >= 2047");
      o.mbufs = n;
    } else if (key == "link_timeout_s") {
      if (!absl::SimpleAtoi(value, &n) || n == 0) return BadSpec(item, "must be >= 1 seconds");
      o.link_timeout = absl::Seconds(n);
    } else {
      return BadSpec(item, "unknown key");
    }
  }
  return o;
}

std::string MemifSocketPath(const std::string& socket_dir, NodeId a, NodeId b) {
  return absl::StrCat(socket_dir, "/memif-", std::min(a, b), "-", std::max(a, b), ".sock");
}

absl::StatusOr<DpdkTransportOptions> MemifClusterTransportOptions(
    NodeId self, const std::vector<NodeId>& peers, const FrameKey& cluster_key,
    const MemifClusterOptions& options) {
  DpdkTransportOptions t;
  t.self = self;
  t.cluster_key = cluster_key;
  t.mtu = options.mtu;
  t.eal.lcore = options.lcore;
  for (NodeId peer : peers) {
    if (peer == self) continue;
    const std::string socket = MemifSocketPath(options.socket_dir, self, peer);
    if (socket.size() >= sizeof(sockaddr_un::sun_path) - 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("memif socket path '", socket, "' is longer than ",
                       sizeof(sockaddr_un::sun_path) - 2, " bytes; use a shorter dir="));
    }
    DpdkPortOptions port;
    // The vdev name must be unique in the process and start with the driver's name.
    port.devargs = absl::StrCat("net_memif_n", peer, ",role=", self < peer ? "server" : "client",
                                ",socket=", socket, options.mtu > 2000 ? ",bsize=16384" : "");
    port.mbufs = options.mbufs;
    port.link_timeout = options.link_timeout;
    t.peer_ports[peer] = port;
  }
  if (t.peer_ports.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("node ", self, " has no peers: a memif cluster needs at least 2 nodes"));
  }
  return t;
}

absl::StatusOr<std::unique_ptr<DpdkTransport>> MakeDpdkMemifTransport(
    NodeId self, const std::vector<NodeId>& peers, const FrameKey& cluster_key,
    const MemifClusterOptions& options) {
  auto t = MemifClusterTransportOptions(self, peers, cluster_key, options);
  if (!t.ok()) return t.status();
  return DpdkTransport::Create(*std::move(t));
}

}  // namespace amalgam::fabric
