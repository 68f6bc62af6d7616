#include "vmm/node/cluster_node.h"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "fabric/cluster_key.h"
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

absl::StatusOr<std::unique_ptr<fabric::Transport>> MakeTransport(const ClusterFlags& flags) {
  absl::StatusOr<fabric::FrameKey> key = fabric::FrameKey::FromFile(flags.cluster_key_file);
  if (!key.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--cluster-key ", flags.cluster_key_file, ": ", key.status().message()));
  }
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
  NodeRuntimeOptions o;
  o.self = flags.node_id;
  o.homes = &node->homes_;
  o.transport = node->transport_.get();
  o.memory = memory;
  o.local_capacity_pages = flags.local_memory_bytes / 4096;
  ClusterNode* raw = node.get();
  o.on_other_message = [raw](fabric::ReceivedMessage m) {
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
  return node;
}

ClusterNode::~ClusterNode() { Stop(); }

bool ClusterNode::LinkUp(directory::NodeId peer) const {
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
  if (runtime_ == nullptr) return;
  runtime_->Stop();
  std::map<std::string, uint64_t> m = runtime_->Metrics();
  if (transport_ != nullptr) transport_->Close();
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
