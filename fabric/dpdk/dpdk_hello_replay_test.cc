// A Hello frame carries a valid cluster-key MAC forever, so anyone who recorded one can replay
// it. Here the Hello of a peer's earlier incarnation is captured off the wire (raw AF_PACKET on
// the veth), the peer restarts, and while its new incarnation receives a page stream the old
// Hello is replayed at the streamer every 2 ms: the live link must neither re-key nor stall.
// af_packet on a veth pair between two namespaces (a memif link has no room for a third party).
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>
#include <vector>

#include "fabric/dpdk/dpdk_test_util.h"
#include "fabric/dpdk/veth_test_util.h"

namespace amalgam::fabric {
namespace {

using testing::NodeReport;

// A raw packet socket for the fabric's ethertype, bound to `dev` inside namespace `ns`
// (created on a helper thread, so this process stays in its own namespace). -1 on failure.
int RawSocketIn(const std::string& ns, const std::string& dev) {
  int fd = -1;
  std::thread([&] {
    if (!testing::EnterNamespace(ns)) return;
    int s = socket(AF_PACKET, SOCK_RAW, htons(kFabricEtherType));
    sockaddr_ll a{};
    a.sll_family = AF_PACKET;
    a.sll_protocol = htons(kFabricEtherType);
    a.sll_ifindex = static_cast<int>(if_nametoindex(dev.c_str()));
    if (s >= 0 && a.sll_ifindex != 0 && bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
      fd = s;
    } else if (s >= 0) {
      close(s);
    }
  }).join();
  return fd;
}

// The first Hello from node `from` seen on `fd`, whole link frame (Ethernet header included).
std::vector<uint8_t> CaptureHello(int fd, NodeId from, std::chrono::seconds limit) {
  timeval tv{0, 200'000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  auto deadline = std::chrono::steady_clock::now() + limit;
  std::vector<uint8_t> buf(9216);
  while (std::chrono::steady_clock::now() < deadline) {
    ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    if (n < static_cast<ssize_t>(kEthHeaderSize + kFrameHeaderSize)) continue;
    FrameHeader h = ReadFrameHeader(buf.data() + kEthHeaderSize);
    if (h.magic == kFrameMagic && (h.flags & kFlagHandshake) && h.src == from) {
      buf.resize(static_cast<size_t>(n));
      return buf;
    }
  }
  return {};
}

TEST_CASE("a Hello replayed from a peer's earlier incarnation neither re-keys nor stalls a link") {
  if (!testing::NeedRoot()) return;
  testing::VethPair v(1);
  INFO(v.why);
  REQUIRE(v.ok);
  FrameKey key = FrameKey::Generate();
  DpdkTransportOptions a = testing::AfPacketNode(v, 0, key);  // node 1: the streamer
  DpdkTransportOptions b = testing::AfPacketNode(v, 1, key);  // node 2: restarts once
  int capture = RawSocketIn(v.ns[0], v.dev[0]);               // sees what node 2 sends to node 1
  int inject = RawSocketIn(v.ns[1], v.dev[1]);  // sends towards node 1 as if from node 2
  REQUIRE(capture >= 0);
  REQUIRE(inject >= 0);

  auto streamer = testing::ForkNode([&] {
    return testing::InNamespace(v.ns[0], [&] { return testing::RunPageStreamer(a, 2, 2, 90); });
  });
  auto first = testing::ForkNode([&] {
    DpdkTransportOptions o = b;
    o.eal.file_prefix += "1";
    return testing::InNamespace(v.ns[1], [&] { return testing::RunPageReceiver(o, 1, 300, true); });
  });
  std::vector<uint8_t> old_hello = CaptureHello(capture, 2, std::chrono::seconds(30));
  close(capture);
  NodeReport r1 = testing::WaitNode(first, std::chrono::seconds(40));

  // Node 2's second life; its old Hello is replayed at node 1 all along.
  const uint64_t pages = 5000;
  auto second = testing::ForkNode([&] {
    DpdkTransportOptions o = b;
    o.eal.file_prefix += "2";
    return testing::InNamespace(v.ns[1],
                                [&] { return testing::RunPageReceiver(o, 1, pages, true); });
  });
  std::atomic<bool> stop{false};
  std::atomic<int> replayed{0};
  std::thread replayer([&] {
    while (!stop && !old_hello.empty()) {
      if (send(inject, old_hello.data(), old_hello.size(), 0) ==
          static_cast<ssize_t>(old_hello.size())) {
        ++replayed;
      }
      usleep(2000);
    }
  });
  NodeReport r2 = testing::WaitNode(second, std::chrono::seconds(60));
  stop = true;
  replayer.join();
  close(inject);
  NodeReport s = testing::WaitNode(streamer, std::chrono::seconds(20));

  INFO("first: " << r1.error << " | second: " << r2.error << " | streamer: " << s.error);
  REQUIRE(!old_hello.empty());
  REQUIRE(r1.ok == 1);
  REQUIRE(replayed > 0);
  REQUIRE(r2.ok == 1);
  REQUIRE(s.ok == 1);
  CHECK(r2.pages == pages);
  CHECK(r2.bad_pages == 0);
  CHECK(r2.out_of_order == 0);
  // The replays reached node 1 while node 2's second life was live and were held, never
  // installed (installing one stalls the stream: r2 would have failed above). After node 2 said
  // goodbye (kFlagLinkBye) a Hello may re-key at once: nothing live is left to protect.
  CHECK(s.held_hellos > 0);
  CHECK(s.connects >= 2);
  std::printf("replayed the old Hello %d times; streamer held %llu new-nonce Hellos\n",
              replayed.load(), static_cast<unsigned long long>(s.held_hellos));
}

}  // namespace
}  // namespace amalgam::fabric
