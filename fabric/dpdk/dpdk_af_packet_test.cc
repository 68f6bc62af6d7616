// Two fabric nodes in two processes in two network namespaces, joined by a veth pair at MTU 1500
// and driven through DPDK net_af_packet: a page takes 3 link frames. Checks delivery under 5 %
// loss, and that forged frames injected by a raw AF_PACKET sender are dropped and counted.
// Needs root (ip netns, veth): tags no-sandbox + exclusive. Namespaces are per-pid and removed
// even when a check fails.
#include <arpa/inet.h>
#include <capnp/message.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "fabric/dpdk/dpdk_test_util.h"
#include "fabric/dpdk/fragmentation.h"
#include "fabric/dpdk/veth_test_util.h"
#include "fabric/peer_session.h"

namespace amalgam::fabric {
namespace {

using testing::AfPacketNode;
using testing::InNamespace;
using testing::NeedRoot;
using testing::NodeReport;
using testing::VethPair;

TEST_CASE("af_packet over veth, MTU 1500, 5% loss: pages intact, in order, no duplicates") {
  if (!NeedRoot()) return;
  VethPair v(1);
  INFO(v.why);
  REQUIRE(v.ok);
  double knob = 0;
  if (v.AddNetemLoss(5)) {
    std::printf("loss: kernel netem, 5%% on both veth ends\n");
  } else {
    knob = 0.05;
    std::printf(
        "loss: sch_netem is not available in this kernel (tc qdisc ... netem refused), so 5%% "
        "receive loss is injected inside DpdkTransport (test_rx_drop_rate, test-only knob) on "
        "both nodes instead\n");
  }
  FrameKey key = FrameKey::Generate();
  const uint64_t pages = 1500;
  auto a = AfPacketNode(v, 0, key), b = AfPacketNode(v, 1, key);
  a.test_rx_drop_rate = b.test_rx_drop_rate = knob;
  a.test_rx_drop_seed = 11;
  b.test_rx_drop_seed = 22;
  auto tx = testing::ForkNode(
      [&] { return InNamespace(v.ns[0], [&] { return testing::RunPageSender(a, 2, pages); }); });
  auto rx = testing::ForkNode(
      [&] { return InNamespace(v.ns[1], [&] { return testing::RunPageReceiver(b, 1, pages); }); });
  NodeReport r = testing::WaitNode(rx, std::chrono::seconds(50));
  NodeReport s = testing::WaitNode(tx, std::chrono::seconds(10));
  INFO("receiver: " << r.error);
  INFO("sender: " << s.error);
  REQUIRE(r.ok == 1);
  REQUIRE(s.ok == 1);
  REQUIRE(r.pages == pages);
  REQUIRE(r.bad_pages == 0);
  REQUIRE(r.out_of_order == 0);
  REQUIRE(r.reassembled >= pages);
  // The loss was real and was repaired by retransmission.
  if (!v.netem) REQUIRE(r.test_rx_dropped + s.test_rx_dropped > 0);
  REQUIRE(s.retransmits > 0);
  std::printf("loss repaired: sender retransmits=%llu, frames dropped by the knob: %llu + %llu\n",
              static_cast<unsigned long long>(s.retransmits),
              static_cast<unsigned long long>(s.test_rx_dropped),
              static_cast<unsigned long long>(r.test_rx_dropped));
}

// --- forged frames -----------------------------------------------------------------------------

std::vector<uint8_t> Eth(const std::string& dst_mac, const std::string& src_mac) {
  std::vector<uint8_t> e(kEthHeaderSize);
  auto d = ParseMac(dst_mac), s = ParseMac(src_mac);
  std::copy(d->begin(), d->end(), e.begin());
  std::copy(s->begin(), s->end(), e.begin() + 6);
  e[12] = kFabricEtherType >> 8;
  e[13] = kFabricEtherType & 0xff;
  return e;
}

std::vector<uint8_t> Encoded(const FrameKey& key, NodeId src, NodeId dst, uint64_t seq,
                             absl::Span<const uint8_t> payload) {
  capnp::MallocMessageBuilder b;
  b.initRoot<schema::Message>().initPageGrant().setPage(123);
  FlatMessage flat(b);
  FrameHeader h;
  h.type = flat.type();
  h.src = src;
  h.dst = dst;
  h.seq = seq;
  EncodedFrame enc;
  (void)EncodeFrame(key, h, flat.bytes(), payload, &enc);
  std::vector<uint8_t> out(enc.size());
  enc.CopyTo(out.data());
  return out;
}

std::vector<uint8_t> Cat(std::vector<uint8_t> a, const std::vector<uint8_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Link frames of `frame` split for MTU 1500; `chunk_delta` != 0 corrupts fragment 1's length.
std::vector<std::vector<uint8_t>> Fragments(const std::vector<uint8_t>& eth,
                                            const std::vector<uint8_t>& frame, int chunk_delta) {
  auto plan = PlanFragments(frame.size(), 1500 - kFrameHeaderSize);
  FrameHeader h = ReadFrameHeader(frame.data());
  std::vector<std::vector<uint8_t>> out;
  for (uint16_t i = 0; i < plan->count; ++i) {
    size_t off = 0, len = 0;
    FragmentExtent(frame.size(), plan->count, i, &off, &len);
    if (i == 1) len += chunk_delta;
    h.frag_index = i;
    h.frag_count = plan->count;
    std::vector<uint8_t> f = eth;
    f.resize(eth.size() + kFrameHeaderSize);
    WriteFrameHeader(h, f.data() + eth.size());
    f.insert(f.end(), frame.begin() + kFrameHeaderSize + off,
             frame.begin() + kFrameHeaderSize + off + len);
    out.push_back(std::move(f));
  }
  return out;
}

// Runs inside namespace A: sends forged frames towards B over a raw AF_PACKET socket.
NodeReport InjectForgeries(const VethPair& v) {
  NodeReport r;
  int s = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_ifindex = static_cast<int>(if_nametoindex(v.dev[0].c_str()));
  to.sll_halen = 6;
  if (s < 0 || to.sll_ifindex == 0) {
    std::snprintf(r.error, sizeof(r.error), "raw socket on %s failed", v.dev[0].c_str());
    return r;
  }
  FrameKey wrong = FrameKey::Generate();  // not the cluster key
  auto eth = Eth(v.mac[1], v.mac[0]);
  std::vector<std::vector<uint8_t>> frames;
  for (uint64_t seq = 1; seq <= 10; ++seq)
    frames.push_back(Cat(eth, Encoded(wrong, 1, 2, seq, {})));
  std::array<uint8_t, kNonceSize> nonce{};
  for (int i = 0; i < 5; ++i) frames.push_back(Cat(eth, BuildHelloFrame(wrong, 1, 2, nonce)));
  auto other_mac = Eth("02:00:00:00:00:99", v.mac[0]);
  for (int i = 0; i < 4; ++i) frames.push_back(Cat(other_mac, Encoded(wrong, 1, 2, 40 + i, {})));
  for (int i = 0; i < 3; ++i) {
    auto f = Cat(eth, Encoded(wrong, 1, 2, 50 + i, {}));
    f[kEthHeaderSize] ^= 0xff;  // magic
    frames.push_back(f);
  }
  for (int i = 0; i < 2; ++i) frames.push_back(Cat(eth, std::vector<uint8_t>(10, 0x42)));
  std::vector<uint8_t> page(kPageSize, 0x5a);
  for (auto& f : Fragments(eth, Encoded(wrong, 1, 2, 20, page), 0)) frames.push_back(f);
  auto bad_geometry = Fragments(eth, Encoded(wrong, 1, 2, 30, page), +7);
  frames.push_back(bad_geometry[1]);
  frames.push_back(Fragments(eth, Encoded(wrong, 1, 2, 31, page), -7)[1]);
  frames.push_back(Fragments(eth, Encoded(wrong, 7, 2, 32, page), 0)[0]);  // unknown source
  for (const auto& f : frames) {
    std::memcpy(to.sll_addr, f.data(), 6);
    if (sendto(s, f.data(), f.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) ==
        static_cast<ssize_t>(f.size())) {
      ++r.pages;
    }
    usleep(200);
  }
  close(s);
  r.ok = r.pages == frames.size();
  return r;
}

TEST_CASE("forged frames from a raw sender are dropped and counted; real traffic still flows") {
  if (!NeedRoot()) return;
  VethPair v(2);
  INFO(v.why);
  REQUIRE(v.ok);
  FrameKey key = FrameKey::Generate();
  const uint64_t pages = 200;
  auto a = AfPacketNode(v, 0, key), b = AfPacketNode(v, 1, key);
  int ready[2], go[2];
  REQUIRE(pipe(ready) == 0);
  REQUIRE(pipe(go) == 0);
  auto rx = testing::ForkNode(
      [&] { return InNamespace(v.ns[1], [&] { return testing::RunPageReceiver(b, 1, pages); }); });
  auto tx = testing::ForkNode([&] {
    return InNamespace(v.ns[0],
                       [&] { return testing::RunPageSender(a, 2, pages, go[0], ready[1]); });
  });
  char c = 0;
  bool sender_ready = read(ready[0], &c, 1) == 1;  // the link is up and authenticated
  NodeReport inj;
  if (sender_ready) {
    auto injector =
        testing::ForkNode([&] { return InNamespace(v.ns[0], [&] { return InjectForgeries(v); }); });
    inj = testing::WaitNode(injector, std::chrono::seconds(20));
    usleep(200000);  // let the receiver poll them in before the real pages start
  }
  (void)!write(go[1], "g", 1);
  NodeReport r = testing::WaitNode(rx, std::chrono::seconds(40));
  NodeReport s = testing::WaitNode(tx, std::chrono::seconds(10));
  for (int fd : {ready[0], ready[1], go[0], go[1]}) close(fd);
  INFO("receiver: " << r.error);
  INFO("sender: " << s.error);
  INFO("injector: " << inj.error);
  REQUIRE(sender_ready);
  REQUIRE(inj.ok == 1);
  REQUIRE(r.ok == 1);
  REQUIRE(s.ok == 1);
  REQUIRE(r.pages == pages);
  REQUIRE(r.bad_pages == 0);
  REQUIRE(r.out_of_order == 0);
  auto drops = [&](DropReason why) { return r.drops[static_cast<int>(why)]; };
  // 10 data frames + 5 Hellos + 1 reassembled page, all under the wrong key.
  CHECK(drops(DropReason::kBadMac) == 16);
  CHECK(drops(DropReason::kWrongDestination) == 4);
  CHECK(r.not_for_us == 4);
  CHECK(drops(DropReason::kBadMagic) == 3);
  CHECK(drops(DropReason::kTooShort) == 2);
  CHECK(drops(DropReason::kBadLength) == 2);
  CHECK(drops(DropReason::kUnknownPeer) == 1);
  // The forged Hellos did not reset the session.
  CHECK(s.drops[static_cast<int>(DropReason::kBadMac)] == 0);
}

}  // namespace
}  // namespace amalgam::fabric
