// Three fabric nodes in three processes over net_memif (one memif pair per node pair, made by
// MakeDpdkMemifTransport): every node streams pages to both others at once; each stream arrives
// intact, in order and exactly once. Plus the spec parser and its errors.
#include "fabric/dpdk/memif_cluster.h"

#include <capnp/message.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <thread>

#include "absl/strings/match.h"
#include "fabric/dpdk/dpdk_test_util.h"

namespace amalgam::fabric {
namespace {

using testing::NodeReport;

constexpr uint64_t kDone = ~uint64_t{0};

// Unique per (source, destination, page number).
uint64_t PageSeed(NodeId src, NodeId dst, uint64_t n) {
  return (uint64_t{src} << 48) | (uint64_t{dst} << 40) | n;
}

absl::Status SendPage(Transport& t, NodeId dst, uint64_t n, const uint8_t* page) {
  capnp::MallocMessageBuilder b;
  auto g = b.initRoot<schema::Message>().initPageGrant();
  g.setPage(n);
  g.setHasData(page != nullptr);
  FlatMessage flat(b);
  absl::Span<const uint8_t> payload;
  if (page != nullptr) payload = absl::MakeConstSpan(page, kPageSize);
  absl::Status s;
  for (int attempt = 0; attempt < 20; ++attempt) {  // UNAVAILABLE: window full for a while
    s = t.SendFrame(dst, flat.Frame(payload));
    if (!absl::IsUnavailable(s)) break;
  }
  return s;
}

// One node: sends `count` pages to every peer (a sender thread) while it checks what arrives.
NodeReport RunClusterNode(NodeId self, const std::vector<NodeId>& all, const FrameKey& key,
                          const MemifClusterOptions& mo, uint64_t count) {
  NodeReport r;
  auto set_error = [&](const std::string& e) {
    std::snprintf(r.error, sizeof(r.error), "node %u: %s", self, e.c_str());
  };
  auto t = MakeDpdkMemifTransport(self, all, key, mo);
  if (!t.ok()) {
    set_error(t.status().ToString());
    return r;
  }
  DpdkTransport& tr = **t;
  std::vector<NodeId> peers;
  for (NodeId n : all) {
    if (n != self) peers.push_back(n);
  }
  for (NodeId p : peers) {
    absl::Status s = tr.WaitForPeer(p, absl::Seconds(30));
    if (!s.ok()) {
      set_error(s.ToString());
      return r;
    }
  }
  std::atomic<bool> send_failed{false};
  std::string send_error;
  std::thread sender([&] {
    uint8_t page[kPageSize];
    for (uint64_t n = 0; n < count && !send_failed; ++n) {
      for (NodeId p : peers) {  // interleaved: both links busy at once
        testing::FillPage(PageSeed(self, p, n), page);
        absl::Status s = SendPage(tr, p, n, page);
        if (!s.ok()) {
          send_error = s.ToString();
          send_failed = true;
          break;
        }
      }
    }
    for (NodeId p : peers) (void)SendPage(tr, p, kDone, nullptr);
  });
  std::map<NodeId, uint64_t> next;  // next page number expected from each peer
  std::map<NodeId, bool> done;
  size_t dones = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  while (dones < peers.size() && std::chrono::steady_clock::now() < deadline) {
    auto m = tr.Receive(absl::Milliseconds(100));
    if (!m.ok()) continue;
    if (m->type() != schema::Message::PAGE_GRANT) {
      ++r.wrong_type;
      continue;
    }
    const NodeId src = m->source();
    const uint64_t n = m->message().getPageGrant().getPage();
    if (n == kDone) {
      if (!done[src]) ++dones;
      done[src] = true;
      if (next[src] != count) ++r.out_of_order;  // "done" overtook pages: order broken
      continue;
    }
    if (n != next[src]) ++r.out_of_order;
    next[src] = n + 1;
    if (testing::CheckPage(PageSeed(src, self, n), m->page().data(), m->page().size())) {
      ++r.pages;
    } else {
      ++r.bad_pages;
    }
  }
  sender.join();
  // Our last frames (and acks) must reach the others before this process goes away.
  (void)tr.Flush(absl::Seconds(10));
  usleep(300'000);  // the peers' final acks for what they sent us
  TransportStats st = tr.GetStats();
  for (int i = 0; i < kDropReasonCount; ++i) r.drops[i] = st.drops.counts[i];
  if (send_failed) {
    set_error("send: " + send_error);
  } else if (dones < peers.size()) {
    set_error("no 'done' from every peer within 90 s");
  } else {
    r.ok = 1;
  }
  return r;
}

TEST_CASE("memif cluster: 3 processes, pages in all 6 directions arrive intact, in order, once") {
  const std::vector<NodeId> all = {0, 1, 2};
  const uint64_t count = 800;
  FrameKey key = FrameKey::Generate();
  MemifClusterOptions mo;
  mo.socket_dir = testing::ShortTempDir();
  std::vector<testing::Child> children;
  for (NodeId self : all) {
    children.push_back(testing::ForkNode([&, self] {
      MemifClusterOptions o = mo;
      o.lcore = static_cast<int>(self % 2);
      return RunClusterNode(self, all, key, o, count);
    }));
  }
  std::vector<NodeReport> reports;
  for (auto& c : children) reports.push_back(testing::WaitNode(c, std::chrono::seconds(150)));
  rmdir(mo.socket_dir.c_str());
  for (size_t i = 0; i < reports.size(); ++i) {
    const NodeReport& r = reports[i];
    INFO("node " << i << ": " << r.error);
    CHECK(r.ok == 1);
    CHECK(r.pages == 2 * count);  // from each of the two peers
    CHECK(r.bad_pages == 0);
    CHECK(r.out_of_order == 0);
    CHECK(r.wrong_type == 0);
    CHECK(r.drops[static_cast<int>(DropReason::kBadMac)] == 0);
    CHECK(r.drops[static_cast<int>(DropReason::kUnknownPeer)] == 0);
  }
}

TEST_CASE("memif cluster spec: keys, defaults and errors naming the bad item") {
  auto d = ParseMemifClusterSpec("");
  REQUIRE(d.ok());
  CHECK(d->socket_dir == "/run/amalgam");
  CHECK(d->mtu == 1500);
  auto o = ParseMemifClusterSpec("dir=/tmp/c1,mtu=9000,lcore=1,mbufs=4095,link_timeout_s=5");
  REQUIRE(o.ok());
  CHECK(o->socket_dir == "/tmp/c1");
  CHECK(o->mtu == 9000);
  CHECK(o->lcore == 1);
  CHECK(o->mbufs == 4095);
  CHECK(o->link_timeout == absl::Seconds(5));
  for (const char* bad : {"mtu=1400", "colour=red", "dir", "lcore=x"}) {
    auto b = ParseMemifClusterSpec(bad);
    INFO(bad);
    REQUIRE(absl::IsInvalidArgument(b.status()));
    CHECK(absl::StrContains(b.status().message(), bad));
  }
  CHECK(MemifSocketPath("/d", 2, 0) == "/d/memif-0-2.sock");
  auto t = MemifClusterTransportOptions(1, {0, 1, 2}, FrameKey::Generate(), *o);
  REQUIRE(t.ok());
  REQUIRE(t->peer_ports.size() == 2);
  CHECK(absl::StrContains(t->peer_ports[0].devargs, "role=client,socket=/tmp/c1/memif-0-1.sock"));
  CHECK(absl::StrContains(t->peer_ports[2].devargs, "role=server,socket=/tmp/c1/memif-1-2.sock"));
  CHECK(absl::StrContains(t->peer_ports[2].devargs, "bsize=16384"));
  auto alone = MemifClusterTransportOptions(1, {1}, FrameKey::Generate(), *o);
  CHECK(absl::IsInvalidArgument(alone.status()));
}

}  // namespace
}  // namespace amalgam::fabric
