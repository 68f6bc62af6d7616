// Two fabric nodes in two processes joined by DPDK net_memif (no network setup needed): every
// page arrives intact, in order, exactly once, both fragmented (MTU 1500) and whole (MTU 9000).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <string>

#include "fabric/dpdk/dpdk_test_util.h"

namespace amalgam::fabric {
namespace {

using testing::NodeReport;

DpdkTransportOptions MemifNode(NodeId self, NodeId peer, bool server, const std::string& sock,
                               size_t mtu, const FrameKey& key) {
  DpdkTransportOptions o;
  o.self = self;
  o.cluster_key = key;
  o.eal.lcore = server ? 0 : 1;
  o.eal.file_prefix = "amfm" + std::to_string(getpid()) + (server ? "s" : "c");
  o.port.devargs = std::string("net_memif0,role=") + (server ? "server" : "client") +
                   ",socket=" + sock + ",mac=02:00:00:00:00:0" + std::to_string(self) +
                   (mtu > 2000 ? ",bsize=16384" : "");
  o.peers[peer] = "02:00:00:00:00:0" + std::to_string(peer);
  o.mtu = mtu;
  return o;
}

void RunPair(size_t mtu, uint64_t pages, bool same_cpu = false) {
  std::string dir = testing::ShortTempDir();
  std::string sock = dir + "/memif.sock";
  FrameKey key = FrameKey::Generate();
  // same_cpu: both processes stay pinned to CPU 0 (EAL's pin kept), so only the idle policy
  // (spin, then yield, then sleep) lets the two pollers take turns.
  auto node = [&](NodeId self, NodeId peer, bool server) {
    DpdkTransportOptions o = MemifNode(self, peer, server, sock, mtu, key);
    if (same_cpu) {
      o.eal.lcore = 0;
      o.eal.keep_pinning = true;
    }
    return o;
  };
  auto srv = testing::ForkNode([&] { return testing::RunPageSender(node(1, 2, true), 2, pages); });
  auto cli =
      testing::ForkNode([&] { return testing::RunPageReceiver(node(2, 1, false), 1, pages); });
  NodeReport rx = testing::WaitNode(cli, std::chrono::seconds(50));
  NodeReport tx = testing::WaitNode(srv, std::chrono::seconds(10));
  rmdir(dir.c_str());
  INFO("receiver: " << rx.error);
  INFO("sender: " << tx.error);
  REQUIRE(rx.ok == 1);
  REQUIRE(tx.ok == 1);
  REQUIRE(tx.pages == pages);
  REQUIRE(rx.pages == pages);
  REQUIRE(rx.bad_pages == 0);
  REQUIRE(rx.out_of_order == 0);
  REQUIRE(rx.wrong_type == 0);
  if (mtu < 4096) REQUIRE(rx.reassembled >= pages);  // really fragmented
  // A clean link: nothing forged, nothing corrupted.
  REQUIRE(rx.drops[static_cast<int>(DropReason::kBadMac)] == 0);
  REQUIRE(tx.drops[static_cast<int>(DropReason::kBadMac)] == 0);
}

TEST_CASE("memif, two processes, MTU 1500: 5000 pages arrive intact, in order, once") {
  RunPair(1500, 5000);
}

TEST_CASE("memif, two processes, MTU 9000: 2000 whole-frame pages arrive intact, in order") {
  RunPair(9000, 2000);
}

TEST_CASE("memif, both pollers pinned to one CPU: the idle policy lets both progress") {
  RunPair(1500, 1000, /*same_cpu=*/true);
}

TEST_CASE("memif: a restarted peer re-handshakes and gets an intact in-order stream again") {
  std::string dir = testing::ShortTempDir();
  std::string sock = dir + "/memif.sock";
  FrameKey key = FrameKey::Generate();
  auto srv = testing::ForkNode(
      [&] { return testing::RunPageStreamer(MemifNode(1, 2, true, sock, 1500, key), 2, 2, 40); });
  // Node 2, first life: takes 300 pages, says done, and goes away.
  auto first = testing::ForkNode([&] {
    auto o = MemifNode(2, 1, false, sock, 1500, key);
    o.eal.file_prefix += "1";
    return testing::RunPageReceiver(o, 1, 300, /*any_start=*/true);
  });
  NodeReport r1 = testing::WaitNode(first, std::chrono::seconds(30));
  // Node 2 again, a new process with a new nonce on the same link.
  auto second = testing::ForkNode([&] {
    auto o = MemifNode(2, 1, false, sock, 1500, key);
    o.eal.file_prefix += "2";
    return testing::RunPageReceiver(o, 1, 300, /*any_start=*/true);
  });
  NodeReport r2 = testing::WaitNode(second, std::chrono::seconds(30));
  NodeReport s = testing::WaitNode(srv, std::chrono::seconds(15));
  rmdir(dir.c_str());
  INFO("first: " << r1.error << " second: " << r2.error << " streamer: " << s.error);
  REQUIRE(r1.ok == 1);
  REQUIRE(r2.ok == 1);
  REQUIRE(s.ok == 1);
  for (const NodeReport* r : {&r1, &r2}) {
    REQUIRE(r->pages == 300);
    REQUIRE(r->bad_pages == 0);
    REQUIRE(r->out_of_order == 0);
  }
  REQUIRE(r2.first_page >= r1.first_page + 300);  // the stream went on; nothing replayed
  REQUIRE(s.connects == 2);
  REQUIRE(s.disconnects == 1);
}

TEST_CASE("memif refuses frames larger than its buffers instead of chaining them") {
  DpdkTransportOptions o = MemifNode(1, 2, true, "/tmp/unused.sock", 1500, FrameKey::Generate());
  o.mtu = 4200;
  auto t = DpdkTransport::Create(o);
  REQUIRE(absl::IsInvalidArgument(t.status()));
  REQUIRE(t.status().message().find("bsize=8192") != std::string::npos);
}

}  // namespace
}  // namespace amalgam::fabric
