// PeerLivenessMonitor: the deadline logic with a fake clock (in-process hub, real frames), then
// over real TCP on loopback: a mute peer, a closed transport and a SIGKILLed peer process.
#include "fabric/peer_liveness.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "fabric/inprocess_transport.h"
#include "fabric/tcp_transport.h"
#include "fabric/test_pages.h"

namespace amalgam::fabric {
namespace {

constexpr int64_t kMs = 1'000'000;

TEST_CASE("liveness logic: heartbeats each tick, loss after the timeout, reported once") {
  InProcessHub hub(FrameKey::Generate());
  auto t1 = hub.Connect(1).value();
  auto t2 = hub.Connect(2).value();
  int64_t now = 0;
  LivenessOptions o;
  o.timeout = absl::Seconds(2);
  o.epoch = 7;
  o.clock = [&] { return now; };
  std::vector<PeerLoss> seen;
  PeerLivenessMonitor m(t1.get(), {1, 2}, o, [&](const PeerLoss& l) { seen.push_back(l); });

  m.Tick();
  auto hb = t2->Receive(absl::Seconds(5));
  REQUIRE(hb.ok());
  REQUIRE(hb->type() == schema::Message::HEARTBEAT);
  REQUIRE(hb->message().getHeartbeat().getNodeId() == 1);
  REQUIRE(hb->message().getHeartbeat().getEpoch() == 7);
  REQUIRE(m.heartbeats_sent() == 1);  // self (1) is not watched

  // Node 2's frames keep it alive; the clock for the timeout restarts at each one.
  REQUIRE(m.Observe(*hb) == true);  // a Heartbeat: nothing more for the owner to do
  now = 1500 * kMs;
  m.OnFrameFrom(2);
  now = 3400 * kMs;
  m.Tick();
  REQUIRE(seen.empty());
  REQUIRE_FALSE(m.IsLost(2));
  now = 3500 * kMs;
  m.Tick();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].node == 2);
  CHECK(seen[0].reason == "node 2: no frame for 2.0 s");
  REQUIRE(m.IsLost(2));
  // Reported once; no more heartbeats to a lost peer.
  uint64_t sent = m.heartbeats_sent();
  now = 9000 * kMs;
  m.OnFrameFrom(2);
  m.Tick();
  REQUIRE(seen.size() == 1);
  REQUIRE(m.heartbeats_sent() == sent);
  REQUIRE(m.Losses().size() == 1);
}

TEST_CASE("liveness logic: a peer never heard from gets the startup timeout, not the timeout") {
  InProcessHub hub(FrameKey::Generate());
  auto t1 = hub.Connect(1).value();
  auto t3 = hub.Connect(3).value();
  int64_t now = 1000 * kMs;
  LivenessOptions o;
  o.startup_timeout = absl::Seconds(10);
  o.clock = [&] { return now; };
  std::vector<PeerLoss> seen;
  PeerLivenessMonitor m(t1.get(), {2, 3}, o, [&](const PeerLoss& l) { seen.push_back(l); });
  now += 9900 * kMs;
  m.Tick();  // node 2 is not even connected to the hub: its sends fail, still no verdict
  REQUIRE(seen.empty());
  now += 100 * kMs;
  m.Tick();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].reason == "node 2: never heard from within 10.0 s");
  CHECK(seen[1].reason == "node 3: never heard from within 10.0 s");
  // A message of another type counts as life too, but is the owner's to handle.
  FlatMessage grant = testing::PageGrant(5);
  REQUIRE(t3->SendFrame(1, grant.Frame()).ok());
  auto got = t1->Receive(absl::Seconds(5));
  REQUIRE(got.ok());
  REQUIRE(m.Observe(*got) == false);
}

// One TCP node with a monitor on its own timer thread and a receive loop feeding it.
struct LiveNode {
  LiveNode(NodeId self, const FrameKey& key, std::map<NodeId, std::string> peers,
           LivenessOptions o) {
    TcpTransportOptions to;
    to.self = self;
    to.cluster_key = key;
    to.peers = std::move(peers);
    transport = TcpTransport::Create(to).value();
    std::vector<NodeId> ids;
    for (const auto& [id, addr] : to.peers) ids.push_back(id);
    monitor =
        std::make_unique<PeerLivenessMonitor>(transport.get(), ids, o, [this](const PeerLoss& l) {
          if (lost.HasBeenNotified()) return;
          first_loss = l;
          lost.Notify();
        });
  }
  void Run(bool with_monitor) {
    receiver = std::thread([this] {
      while (!stop) {
        auto m = transport->Receive(absl::Milliseconds(50));
        if (absl::IsCancelled(m.status())) return;
        if (m.ok() && monitor->Observe(*m)) heartbeats_seen++;
      }
    });
    if (with_monitor) monitor->Start();
  }
  void Shutdown() {
    monitor->Stop();
    stop = true;
    if (receiver.joinable()) receiver.join();
    transport->Close();
  }
  ~LiveNode() { Shutdown(); }
  // Waits (bounded) until `n` heartbeats arrived.
  bool WaitHeartbeats(int n) {
    for (int i = 0; i < 400 && heartbeats_seen < n; ++i) usleep(50'000);
    return heartbeats_seen >= n;
  }

  std::unique_ptr<TcpTransport> transport;
  std::unique_ptr<PeerLivenessMonitor> monitor;
  std::thread receiver;
  std::atomic<bool> stop{false};
  std::atomic<int> heartbeats_seen{0};
  absl::Notification lost;
  PeerLoss first_loss;
};

std::string Addr(const TcpTransport& t) { return absl::StrCat("127.0.0.1:", t.listen_port()); }

LivenessOptions Generous() {
  LivenessOptions o;
  o.interval = absl::Milliseconds(50);
  o.timeout = absl::Seconds(8);  // far above any scheduling stall on a loaded CI machine
  o.link_down_grace = absl::Milliseconds(300);
  return o;
}

TEST_CASE("tcp: a closed peer transport is reported as 'connection closed', naming the node") {
  FrameKey key = FrameKey::Generate();
  LiveNode b(2, key, {{1, "127.0.0.1:1"}}, Generous());  // node 1 dials (lower id)
  LiveNode a(1, key, {{2, Addr(*b.transport)}}, Generous());
  a.Run(true);
  b.Run(true);
  REQUIRE(a.transport->WaitForPeer(2, absl::Seconds(20)).ok());
  REQUIRE(a.WaitHeartbeats(3));
  REQUIRE(b.WaitHeartbeats(3));
  REQUIRE_FALSE(a.lost.HasBeenNotified());

  b.Shutdown();
  REQUIRE(a.lost.WaitForNotificationWithTimeout(absl::Seconds(30)));
  INFO(a.first_loss.reason);
  CHECK(a.first_loss.node == 2);
  CHECK(absl::StartsWith(a.first_loss.reason, "node 2: connection closed"));
  CHECK(a.monitor->IsLost(2));
}

TEST_CASE("tcp: a connected but mute peer is reported after the timeout") {
  FrameKey key = FrameKey::Generate();
  LivenessOptions o = Generous();
  o.timeout = absl::Milliseconds(1500);
  LiveNode b(2, key, {{1, "127.0.0.1:1"}}, o);
  LiveNode a(1, key, {{2, Addr(*b.transport)}}, o);
  a.Run(true);
  b.Run(false);  // b receives (and so keeps the link) but never sends a heartbeat
  REQUIRE(a.transport->WaitForPeer(2, absl::Seconds(20)).ok());
  FlatMessage grant = testing::PageGrant(1);  // one frame: b was heard once
  REQUIRE(b.transport->SendFrame(1, grant.Frame()).ok());
  REQUIRE(a.lost.WaitForNotificationWithTimeout(absl::Seconds(30)));
  INFO(a.first_loss.reason);
  CHECK(absl::StartsWith(a.first_loss.reason, "node 2: no frame for "));
  CHECK(b.WaitHeartbeats(1));  // the link itself was fine all along
}

TEST_CASE("tcp: a peer process killed with SIGKILL is reported lost, naming the node") {
  FrameKey key = FrameKey::Generate();
  int port_pipe[2];
  REQUIRE(pipe(port_pipe) == 0);
  // Fork before this process has threads; the child is node 2 until it is killed.
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    close(port_pipe[0]);
    {
      LiveNode b(2, key, {{1, "127.0.0.1:1"}}, Generous());
      int port = b.transport->listen_port();
      (void)!write(port_pipe[1], &port, sizeof(port));
      b.Run(true);
      sleep(60);  // killed long before
    }
    _exit(0);
  }
  close(port_pipe[1]);
  int port = 0;
  REQUIRE(read(port_pipe[0], &port, sizeof(port)) == sizeof(port));
  close(port_pipe[0]);
  LiveNode a(1, key, {{2, absl::StrCat("127.0.0.1:", port)}}, Generous());
  a.Run(true);
  bool up = a.WaitHeartbeats(3);
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  REQUIRE(up);
  REQUIRE(a.lost.WaitForNotificationWithTimeout(absl::Seconds(30)));
  INFO(a.first_loss.reason);
  CHECK(a.first_loss.node == 2);
  CHECK(absl::StartsWith(a.first_loss.reason, "node 2: connection closed"));
}

}  // namespace
}  // namespace amalgam::fabric
