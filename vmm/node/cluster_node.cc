#include "vmm/node/cluster_node.h"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/strings/strip.h"
#include "fabric/cluster_key.h"
#include "fabric/dpdk/memif_cluster.h"
#include "fabric/tcp_transport.h"
#include "vmm/config/vm_config.h"
#include "vmm/exit_outcome.h"

namespace amalgam::vmm::node {
namespace {

uint64_t Get(const std::map<std::string, uint64_t>& m, const std::string& k) {
  auto it = m.find(k);
  return it == m.end() ? 0 : it->second;
}

uint64_t SumPrefix(const std::map<std::string, uint64_t>& m, const std::string& prefix) {
  uint64_t s = 0;
  for (auto it = m.lower_bound(prefix); it != m.end() && it->first.rfind(prefix, 0) == 0; ++it) {
    s += it->second;
  }
  return s;
}

// --fabric dpdk-memif[:SPEC]: a memif pair per node pair on this host
// (fabric/dpdk/memif_cluster.h). Opening the ports waits for each peer process in turn, so every
// node waits here.
absl::StatusOr<std::unique_ptr<fabric::Transport>> MakeMemifTransport(const ClusterFlags& flags,
                                                                      const fabric::FrameKey& key) {
  absl::string_view spec = flags.fabric;
  absl::ConsumePrefix(&spec, "dpdk-memif");
  absl::ConsumePrefix(&spec, ":");
  absl::StatusOr<fabric::MemifClusterOptions> mo = fabric::ParseMemifClusterSpec(spec);
  if (!mo.ok())
    return absl::InvalidArgumentError(absl::StrCat("--fabric: ", mo.status().message()));
  if (!absl::StrContains(spec, "link_timeout_s=")) mo->link_timeout = flags.peer_timeout;
  std::vector<fabric::NodeId> ids;
  for (const auto& [id, address] : flags.peers) ids.push_back(id);
  auto t = fabric::MakeDpdkMemifTransport(flags.node_id, ids, key, *mo);
  if (!t.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("--fabric ", flags.fabric, ": ", t.status().message(),
                     " (start every node with the same --peers, --cluster-key and --fabric)"));
  }
  for (fabric::NodeId id : ids) {
    if (id == flags.node_id) continue;
    if (absl::Status s = (*t)->WaitForPeer(id, flags.peer_timeout); !s.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("node ", id, " did not answer over ", flags.fabric, ": ", s.message()));
    }
  }
  return std::unique_ptr<fabric::Transport>(std::move(*t));
}

absl::StatusOr<std::unique_ptr<fabric::Transport>> MakeTransport(const ClusterFlags& flags) {
  absl::StatusOr<fabric::FrameKey> key = fabric::FrameKey::FromFile(flags.cluster_key_file);
  if (!key.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--cluster-key ", flags.cluster_key_file, ": ", key.status().message()));
  }
  absl::string_view memif_spec = flags.fabric;
  if (absl::ConsumePrefix(&memif_spec, "dpdk-memif")) return MakeMemifTransport(flags, *key);
  fabric::TcpTransportOptions o;
  o.self = flags.node_id;
  o.listen_address = flags.peers.at(flags.node_id);
  for (const auto& [id, address] : flags.peers) {
    if (id != flags.node_id) o.peers[id] = address;
  }
  o.cluster_key = *key;
  absl::StatusOr<std::unique_ptr<fabric::TcpTransport>> t = fabric::TcpTransport::Create(o);
  if (!t.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--peers: cannot listen on ", o.listen_address, ": ", t.status().message()));
  }
  // Node 0 must see every peer before the guest starts (its pages live there).
  if (flags.node_id == 0) {
    absl::Time deadline = absl::Now() + flags.peer_timeout;
    for (const auto& [id, address] : o.peers) {
      absl::Status s =
          (*t)->WaitForPeer(id, std::max(deadline - absl::Now(), absl::ZeroDuration()));
      if (!s.ok()) {
        return absl::FailedPreconditionError(
            absl::StrCat("node ", id, " (", address, ") did not connect within ",
                         absl::FormatDuration(flags.peer_timeout),
                         ": start it with the same --peers and --cluster-key, or fix its address"));
      }
    }
  }
  return std::unique_ptr<fabric::Transport>(std::move(*t));
}

}  // namespace

std::string SummaryLine(directory::NodeId self, const std::map<std::string, uint64_t>& m) {
  const uint64_t mib = 1 << 20;
  return absl::StrCat("amalgam: node ", self, ": homed ", Get(m, "home_pages") * 4096 / mib,
                      " MiB (", Get(m, "home_pages_written"), " pages written); served ",
                      Get(m, "home_PageRequest"), " page requests (", Get(m, "sent_msgs_PageGrant"),
                      " grants to peers), ", Get(m, "home_Writeback"), " writebacks; faults ",
                      Get(m, "faults_local_home"), " local-home / ", Get(m, "faults_remote_home"),
                      " remote-home; evictions ",
                      Get(m, "evictions_shared") + Get(m, "evictions_modified"), "; fabric sent ",
                      SumPrefix(m, "sent_msgs_"), " msgs / ", SumPrefix(m, "sent_bytes_") / 1024,
                      " KiB, received ", SumPrefix(m, "recv_msgs_"), " msgs / ",
                      SumPrefix(m, "recv_bytes_") / 1024, " KiB; errors ", Get(m, "errors"));
}

absl::StatusOr<std::unique_ptr<ClusterNode>> ClusterNode::Join(const ClusterFlags& flags,
                                                               uint64_t memory_bytes,
                                                               memory::GuestMemory* memory) {
  absl::StatusOr<directory::StaticPartitionHomeMap> homes = PlanHomes(flags, memory_bytes);
  if (!homes.ok()) return homes.status();
  std::unique_ptr<ClusterNode> node(new ClusterNode(flags, std::move(*homes)));
  absl::StatusOr<std::unique_ptr<fabric::Transport>> t = MakeTransport(flags);
  if (!t.ok()) return t.status();
  node->transport_ = std::move(*t);
  node->tcp_ = dynamic_cast<fabric::TcpTransport*>(node->transport_.get());
  if (absl::Status s = node->CheckShares(); !s.ok()) return s;
  NodeRuntimeOptions o;
  o.self = flags.node_id;
  o.homes = &node->homes_;
  o.transport = node->transport_.get();
  o.memory = memory;
  o.local_capacity_pages = flags.local_memory_bytes / 4096;
  ClusterNode* raw = node.get();
  std::vector<fabric::NodeId> peer_ids;
  for (const auto& [id, address] : flags.peers) peer_ids.push_back(id);
  fabric::LivenessOptions lo;
  lo.startup_timeout = flags.peer_timeout;
  node->liveness_ = std::make_unique<fabric::PeerLivenessMonitor>(
      node->transport_.get(), peer_ids, lo, [raw](const fabric::PeerLoss& loss) {
        std::function<void(const std::string&)> notify;
        {
          absl::MutexLock l(&raw->lost_mu_);
          if (raw->lost_.has_value()) return;
          raw->lost_ = loss.reason;
          notify = raw->on_lost_;
        }
        std::fprintf(stderr, "amalgam: node %u: lost cluster %s\n", raw->flags_.node_id,
                     loss.reason.c_str());
        if (notify) notify(loss.reason);
      });
  o.on_other_message = [raw](fabric::ReceivedMessage m) {
    if (raw->liveness_->Observe(m)) return;  // a Heartbeat
    if (m.type() == fabric::schema::Message::LEAVE && m.source() == 0 &&
        !raw->left_.HasBeenNotified()) {
      raw->left_.Notify();
    }
  };
  absl::StatusOr<std::unique_ptr<NodeRuntime>> rt = NodeRuntime::Create(o);
  if (!rt.ok()) return rt.status();
  node->runtime_ = std::move(*rt);
  if (memory != nullptr) {
    if (absl::Status s = node->runtime_->SeedFromGuestMemory(); !s.ok()) return s;
  }
  if (absl::Status s = node->runtime_->Start(); !s.ok()) return s;
  node->liveness_->Start();
  return node;
}

void ClusterNode::OnPeerLost(std::function<void(const std::string& reason)> on_lost) {
  std::optional<std::string> already;
  {
    absl::MutexLock l(&lost_mu_);
    on_lost_ = on_lost;
    already = lost_;
  }
  if (already.has_value() && on_lost) on_lost(*already);
}

std::optional<std::string> ClusterNode::lost_reason() const {
  absl::MutexLock l(&lost_mu_);
  return lost_;
}

ClusterNode::~ClusterNode() { Stop(); }

uint64_t ClusterNode::ShareBytes(directory::NodeId id) const {
  uint64_t pages = 0;
  for (const auto& r : homes_.ranges()) pages += r.home == id ? r.count : 0;
  return pages * 4096;
}

// Every node must partition guest RAM the same way, or requests go to nodes that do not home
// the page. Each memory node announces its share (Join.memoryBytes) as soon as node 0's link is
// up; node 0 compares every share with its own plan before any page moves.
absl::Status ClusterNode::CheckShares() {
  const absl::Time deadline = absl::Now() + flags_.peer_timeout;
  if (flags_.node_id != 0) {
    absl::Status s = absl::DeadlineExceededError("node 0 did not connect");
    while (absl::Now() < deadline) {
      if (tcp_ != nullptr && !tcp_->WaitForPeer(0, absl::Milliseconds(100)).ok()) continue;
      capnp::MallocMessageBuilder b;
      auto join = b.initRoot<fabric::schema::Message>().initJoin();
      join.setNodeId(flags_.node_id);
      join.setMemoryBytes(ShareBytes(flags_.node_id));
      s = transport_->Send(0, b);
      if (s.ok()) return s;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("node 0 (", flags_.peers.at(0), ") did not connect within ",
                     absl::FormatDuration(flags_.peer_timeout), ": ", s.message()));
  }
  std::map<directory::NodeId, bool> waiting;
  for (const auto& [id, address] : flags_.peers) {
    if (id != 0) waiting[id] = true;
  }
  while (!waiting.empty()) {
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "node ", waiting.begin()->first, " (", flags_.peers.at(waiting.begin()->first),
          ") connected but did not announce its share of guest RAM within ",
          absl::FormatDuration(flags_.peer_timeout), "; is it the same amalgam version?"));
    }
    absl::StatusOr<fabric::ReceivedMessage> m = transport_->Receive(left);
    if (!m.ok() || m->type() != fabric::schema::Message::JOIN) continue;  // e.g. early heartbeats
    const directory::NodeId from = m->source();
    const uint64_t theirs = m->message().getJoin().getMemoryBytes();
    if (theirs != ShareBytes(from)) {
      return absl::FailedPreconditionError(
          absl::StrCat("node ", from, " homes ", theirs >> 20, " MiB (", theirs,
                       " bytes) of guest RAM but "
                       "node 0's --memory/--node-memory give it ",
                       ShareBytes(from) >> 20, " MiB (", ShareBytes(from),
                       " bytes): start every node with the same --memory and --node-memory"));
    }
    waiting.erase(from);
  }
  return absl::OkStatus();
}

bool ClusterNode::LinkUp(directory::NodeId peer) const {
  if (liveness_ != nullptr && liveness_->IsLost(peer)) return false;
  return tcp_ == nullptr || tcp_->WaitForPeer(peer, absl::ZeroDuration()).ok();
}

void ClusterNode::Finish(const std::string& reason) {
  for (const auto& [id, address] : flags_.peers) {
    if (id == flags_.node_id) continue;
    capnp::MallocMessageBuilder b;
    auto leave = b.initRoot<fabric::schema::Message>().initLeave();
    leave.setNodeId(flags_.node_id);
    leave.setReason(reason);
    runtime_->SendOther(id, b).IgnoreError();  // a peer that is gone needs no goodbye
  }
  Stop();
}

void ClusterNode::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (liveness_ != nullptr) liveness_->Stop();
  if (runtime_ == nullptr) return;
  runtime_->Stop();
  std::map<std::string, uint64_t> m = runtime_->Metrics();
  if (transport_ != nullptr) {
    // The fabric's own view: links made and lost, frames dropped (forged, replayed, ...).
    fabric::TransportStats ts = transport_->GetStats();
    m["fabric_connects"] = ts.connects;
    m["fabric_disconnects"] = ts.disconnects;
    for (int r = 0; r < fabric::kDropReasonCount; ++r) {
      const auto reason = static_cast<fabric::DropReason>(r);
      if (ts.drops.Get(reason) > 0) {
        m[absl::StrCat("fabric_drops_", fabric::DropReasonName(reason))] = ts.drops.Get(reason);
      }
    }
    transport_->Close();
  }
  if (!flags_.metrics_out.empty()) {
    std::ofstream out(flags_.metrics_out, std::ios::trunc);
    out << FormatMetrics(m);
    if (!out) {
      std::fprintf(stderr, "amalgam: --metrics-out %s: cannot write\n", flags_.metrics_out.c_str());
    }
  }
  std::fprintf(stderr, "%s\n", SummaryLine(flags_.node_id, m).c_str());
}

int RunMemoryNode(const ClusterFlags& flags, const std::vector<std::string>& args) {
  uint64_t memory_bytes = config::kDefaultMemoryBytes;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string value;
    if (args[i] == "--memory" && i + 1 < args.size()) {
      value = args[++i];
    } else if (args[i].rfind("--memory=", 0) == 0) {
      value = args[i].substr(9);
    } else {
      std::fprintf(stderr,
                   "amalgam: %s: node %u is a memory node (only node 0 runs the guest); it takes "
                   "only --memory and the cluster flags\n",
                   args[i].c_str(), flags.node_id);
      return kExitUsage;
    }
    absl::StatusOr<uint64_t> bytes = config::ParseMemorySize(value);
    if (!bytes.ok() || *bytes == 0 || *bytes % 4096 != 0) {
      std::fprintf(stderr, "amalgam: --memory %s: give a page multiple such as 256M\n",
                   value.c_str());
      return kExitUsage;
    }
    memory_bytes = *bytes;
  }

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  absl::StatusOr<std::unique_ptr<ClusterNode>> node =
      ClusterNode::Join(flags, memory_bytes, nullptr);
  if (!node.ok()) {
    std::fprintf(stderr, "amalgam: %.*s\n", static_cast<int>(node.status().message().size()),
                 node.status().message().data());
    return kExitUsage;
  }
  std::fprintf(stderr, "amalgam: node %u serving its share of a %llu MiB guest on %s\n",
               flags.node_id, static_cast<unsigned long long>(memory_bytes >> 20),
               flags.peers.at(flags.node_id).c_str());
  // Node 0's Leave ends this node; so does SIGINT/SIGTERM.
  std::atomic<bool> signaled{false};
  std::thread signal_thread([&] {
    int sig = 0;
    while (sigwait(&stop_signals, &sig) != 0) {
    }
    signaled.store(true);
  });
  // Without a liveness monitor yet: node 0's link down for a while after it was up = gone.
  bool seen = false;
  bool gone = false;
  absl::Time down_since = absl::InfiniteFuture();
  const absl::Time join_deadline = absl::Now() + flags.peer_timeout;
  while (!signaled.load() && !(*node)->WaitForLeave(absl::Milliseconds(100))) {
    if (!seen && absl::Now() > join_deadline && !(*node)->LinkUp(0)) {
      std::fprintf(stderr, "amalgam: node %u: node 0 (%s) did not connect within %s\n",
                   flags.node_id, flags.peers.at(0).c_str(),
                   absl::FormatDuration(flags.peer_timeout).c_str());
      gone = true;
      break;
    }
    if ((*node)->LinkUp(0)) {
      seen = true;
      down_since = absl::InfiniteFuture();
    } else if (seen && down_since == absl::InfiniteFuture()) {
      down_since = absl::Now();
    } else if (seen && absl::Now() - down_since > absl::Seconds(3)) {
      gone = true;
      break;
    }
  }
  if (gone && seen) {
    std::fprintf(stderr, "amalgam: node %u: node 0 went away without saying Leave\n",
                 flags.node_id);
  }
  (*node)->Stop();
  if (!signaled.load()) pthread_kill(signal_thread.native_handle(), SIGTERM);
  signal_thread.join();
  return gone ? kExitVmmError : 0;
}

}  // namespace amalgam::vmm::node
