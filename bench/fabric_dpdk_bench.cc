// fabric_dpdk_bench: 4 KiB page fetch over amalgam's DpdkTransport (memif, two processes) vs the
// raw DPDK memif ping-pong (bench/raw_dpdk_pingpong.cc), in the same run, same lcores, same idle
// policy. Prints median/p99 RTT, pages/s and the fabric/raw ratios. Never asserts.
//   bazel run -c opt //bench:fabric_dpdk_bench -- [--iters N] [--secs S] [--window W]
#include <capnp/message.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/pingpong_stats.h"
#include "bench/raw_dpdk_pingpong.h"
#include "fabric/cluster_key.h"
#include "fabric/dpdk/dpdk_transport.h"
#include "fabric/frame.h"
#include "fabric/message.h"
#include "fabric/schema/messages.capnp.h"
#include "testutil/child_process.h"

namespace amalgam::bench {
namespace {

namespace fab = amalgam::fabric;
using Clock = std::chrono::steady_clock;
using testutil::ForkChild;
using testutil::WaitChild;
constexpr uint64_t kPages = 256;
constexpr uint64_t kStopPage = ~uint64_t{0};

double UsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

struct FabricConfig {
  std::string socket_path;
  std::string tag;
  size_t mtu = 9000;
  fab::FrameKey key = fab::FrameKey::FromBytes({});
  RawPingpongConfig run;  // iterations, window, seconds
};

fab::DpdkTransportOptions Node(const FabricConfig& c, bool server) {
  fab::DpdkTransportOptions o;
  o.self = server ? 1 : 2;
  o.cluster_key = c.key;
  o.eal.lcore = server ? 0 : 1;
  o.eal.keep_pinning = true;  // pinned like the raw baseline
  o.eal.file_prefix = "amfb" + c.tag + (server ? "s" : "c");
  o.port.devargs = std::string("net_memif0,role=") + (server ? "server" : "client") +
                   ",socket=" + c.socket_path + ",mac=02:00:00:00:00:0" + (server ? "1" : "2") +
                   (c.mtu > 2000 ? ",bsize=16384" : "");
  o.peers[server ? 2 : 1] = server ? "02:00:00:00:00:02" : "02:00:00:00:00:01";
  o.mtu = c.mtu;
  return o;
}

void FailWith(PingpongStats* s, const std::string& what) {
  std::snprintf(s->error, sizeof(s->error), "%s", what.c_str());
}

PingpongStats FabricServer(const FabricConfig& c) {
  PingpongStats s;
  auto t = fab::DpdkTransport::Create(Node(c, true));
  if (!t.ok()) return FailWith(&s, t.status().ToString()), s;
  std::vector<uint8_t> pages(kPages * fab::kPageSize);
  for (uint64_t n = 0; n < kPages; ++n)
    for (uint64_t i = 0; i < fab::kPageSize / 8; ++i) {
      uint64_t w = PagePatternWord(n, i);
      std::memcpy(&pages[n * fab::kPageSize + i * 8], &w, 8);
    }
  auto last = Clock::now();
  while (UsSince(last) < c.run.server_idle_exit_secs * 1e6) {
    auto m = (*t)->Receive(absl::Seconds(1));
    if (!m.ok()) continue;
    last = Clock::now();
    if (m->type() != fab::schema::Message::PAGE_REQUEST) continue;
    uint64_t page = m->message().getPageRequest().getPage();
    if (page == kStopPage) {
      s.ok = 1;
      (void)(*t)->Flush(absl::Seconds(1));
      break;
    }
    capnp::MallocMessageBuilder b(fab::kMessageFirstSegmentWords);
    auto g = b.initRoot<fab::schema::Message>().initPageGrant();
    g.setPage(page);
    g.setHasData(true);
    g.setReqId(m->message().getPageRequest().getReqId());
    fab::FlatMessage flat(b);
    auto payload = absl::MakeConstSpan(&pages[(page % kPages) * fab::kPageSize], fab::kPageSize);
    (void)(*t)->SendFrame(2, flat.Frame(payload));
  }
  if (!s.ok) FailWith(&s, "server: no stop from the client");
  return s;
}

// Sends a request for `page` with request id `id`.
bool Request(fab::DpdkTransport& t, uint64_t page, uint64_t id) {
  capnp::MallocMessageBuilder b(fab::kMessageFirstSegmentWords);
  auto r = b.initRoot<fab::schema::Message>().initPageRequest();
  r.setPage(page);
  r.setReqId(id);
  r.setRequester(2);
  return t.Send(1, b).ok();
}

// Checks a PageGrant reply like the raw client does (first and last word of the page).
bool GoodReply(const fab::ReceivedMessage& m, uint64_t* id) {
  if (m.type() != fab::schema::Message::PAGE_GRANT) return false;
  auto g = m.message().getPageGrant();
  *id = g.getReqId();
  auto p = m.page();
  if (p.size() != fab::kPageSize) return false;
  uint64_t first, last;
  std::memcpy(&first, p.data(), 8);
  std::memcpy(&last, p.data() + fab::kPageSize - 8, 8);
  return first == PagePatternWord(g.getPage() % kPages, 0) &&
         last == PagePatternWord(g.getPage() % kPages, fab::kPageSize / 8 - 1);
}

PingpongStats FabricClient(const FabricConfig& c) {
  PingpongStats s;
  auto t = fab::DpdkTransport::Create(Node(c, false));
  if (!t.ok()) return FailWith(&s, t.status().ToString()), s;
  absl::Status st = (*t)->WaitForPeer(1, absl::Seconds(20));
  if (!st.ok()) return FailWith(&s, st.ToString()), s;
  std::vector<double> us;
  uint64_t seq = 1;
  for (int it = 0; it < c.run.warmup + c.run.rtt_iters; ++it, ++seq) {
    auto ts = Clock::now();
    Request(**t, seq % kPages, seq);
    bool got = false;
    while (!got) {
      auto m = (*t)->Receive(absl::Milliseconds(500));
      if (!m.ok()) break;
      uint64_t id = 0;
      bool good = GoodReply(*m, &id);
      if (id != seq) continue;
      got = true;
      if (!good) ++s.bad;
    }
    if (!got) {
      ++s.lost;
      continue;
    }
    if (it >= c.run.warmup) us.push_back(UsSince(ts));
  }
  SummarizeRtt(us, &s);
  std::fprintf(stderr, "fabric client (mtu %zu) after the RTT phase: %s | %s\n", c.mtu,
               (*t)->GetStats().ToString().c_str(), (*t)->GetLinkStats().ToString().c_str());
  auto tb = Clock::now();
  int outstanding = 0;
  while (UsSince(tb) < c.run.bw_secs * 1e6) {
    while (outstanding < c.run.window && Request(**t, seq % kPages, seq)) {
      ++seq;
      ++outstanding;
    }
    auto m = (*t)->Receive(absl::Milliseconds(500));
    if (!m.ok()) {
      s.lost += outstanding;
      outstanding = 0;
      continue;
    }
    uint64_t id = 0;
    if (!GoodReply(*m, &id)) ++s.bad;
    ++s.bw_pages;
    --outstanding;
  }
  s.bw_secs = UsSince(tb) / 1e6;
  s.pages_per_s = s.bw_pages / s.bw_secs;
  // Drain the replies still in flight, then stop the server.
  while (outstanding > 0 && (*t)->Receive(absl::Milliseconds(200)).ok()) --outstanding;
  Request(**t, kStopPage, 0);
  (void)(*t)->Flush(absl::Seconds(2));
  auto l = (*t)->GetLinkStats();
  std::fprintf(stderr, "fabric client (mtu %zu) at the end: %s | %s\n", c.mtu,
               (*t)->GetStats().ToString().c_str(), l.ToString().c_str());
  s.ok = 1;
  return s;
}

template <typename ServerFn, typename ClientFn>
PingpongStats RunPair(ServerFn server, ClientFn client) {
  auto srv = ForkChild<PingpongStats>(server);
  usleep(100000);
  auto cli = ForkChild<PingpongStats>(client);
  PingpongStats cs, ss;
  if (!WaitChild(cli, &cs, std::chrono::seconds(180))) FailWith(&cs, "client died or hung");
  if (!WaitChild(srv, &ss, std::chrono::seconds(10)) || !ss.ok) {
    std::printf("  (server: %s)\n", ss.error[0] ? ss.error : "no clean exit");
  }
  return cs;
}

// Per-message costs the fabric pays and the raw baseline does not, measured in this process:
// the AES-256-GMAC MAC (frame_mac.h) on send and on receive, the Cap'n Proto body build and the
// body validation of ReceivedMessage::Parse.
struct Costs {
  double mac_us = 0, verify_us = 0, build_us = 0, parse_us = 0;
};

Costs MeasureCosts() {
  Costs c;
  fab::FrameKey key = fab::FrameKey::Generate();
  std::vector<uint8_t> page(fab::kPageSize, 1);
  const int n = 3000;
  std::vector<uint8_t> frame;
  auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    capnp::MallocMessageBuilder b(fab::kMessageFirstSegmentWords);
    auto g = b.initRoot<fab::schema::Message>().initPageGrant();
    g.setPage(i);
    g.setHasData(true);
    fab::FlatMessage flat(b);
    if (i == 0) {
      fab::FrameHeader h;
      h.type = flat.type();
      h.dst = 2;
      fab::EncodedFrame enc;
      (void)fab::EncodeFrame(key, h, flat.bytes(), page, &enc);
      frame.resize(enc.size());
      enc.CopyTo(frame.data());
    }
  }
  c.build_us = UsSince(t0) / n;
  fab::FrameHeader h = fab::ReadFrameHeader(frame.data());
  auto body = absl::MakeConstSpan(frame).subspan(fab::kFrameHeaderSize, h.body_len);
  fab::EncodedFrame enc;
  t0 = Clock::now();
  for (int i = 0; i < n; ++i) (void)fab::EncodeFrame(key, h, body, page, &enc);
  c.mac_us = UsSince(t0) / n;
  fab::DropReason why;
  t0 = Clock::now();
  for (int i = 0; i < n; ++i) (void)fab::VerifyFrame(key, frame, 2, &why);
  c.verify_us = UsSince(t0) / n;
  t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    fab::FrameBuffer buf = fab::FrameBuffer::Allocate(frame.size());
    std::memcpy(buf.data(), frame.data(), frame.size());
    (void)fab::ReceivedMessage::Parse(std::move(buf), h);
  }
  c.parse_us = UsSince(t0) / n;
  return c;
}

void Ratio(const char* name, const PingpongStats& f, const PingpongStats& r) {
  if (!f.ok || !r.ok || r.p50_us <= 0 || r.pages_per_s <= 0) return;
  std::printf("  ratio %-22s p50 %.2fx  p99 %.2fx  pages/s %.2fx (fabric/raw; goal: RTT <= 1.5x)\n",
              name, f.p50_us / r.p50_us, f.p99_us / r.p99_us, f.pages_per_s / r.pages_per_s);
}

int Main(int argc, char** argv) {
  RawPingpongConfig run;
  bool deadlock_detection = false;
  run.rtt_iters = 20000;
  run.bw_secs = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--iters") {
      run.rtt_iters = std::atoi(argv[i + 1]);
    } else if (k == "--secs") {
      run.bw_secs = std::atof(argv[i + 1]);
    } else if (k == "--window") {
      run.window = std::atoi(argv[i + 1]);
    } else if (k == "--deadlock-detection") {
      deadlock_detection = std::string(argv[i + 1]) == "on";
    } else {
      std::fprintf(stderr,
                   "unknown flag %s (known: --iters --secs --window --deadlock-detection on|off)\n",
                   k.c_str());
      return 2;
    }
  }
  // Debian's Abseil runs debug-mode Mutex deadlock detection (~55 ns per lock here); a release
  // binary turns it off, so the fabric side runs without it unless asked (children inherit).
  if (!deadlock_detection) absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  char dir[] = "/tmp/amfbench.XXXXXX";
  if (mkdtemp(dir) == nullptr) return 1;
  std::string tag = std::to_string(getpid());
  std::printf(
      "4 KiB page fetch over DPDK memif, 2 processes (lcore 0 server, lcore 1 client), "
      "%d round trips, then %.1f s with %d in flight; Abseil deadlock detection %s\n",
      run.rtt_iters, run.bw_secs, run.window, deadlock_detection ? "on" : "off");
  Costs costs = MeasureCosts();

  RawPingpongConfig rs = run, rc = run;
  rs.server = true;
  rs.socket_path = rc.socket_path = std::string(dir) + "/raw.sock";
  rs.memif_extra = rc.memif_extra = ",bsize=16384";  // one memif buffer per frame, as the fabric
  rs.lcore = 0;
  rc.lcore = 1;
  rs.file_prefix = "amfbr" + tag + "s";
  rc.file_prefix = "amfbr" + tag + "c";
  PingpongStats raw = RunPair([&] { return RunRawServer(rs); }, [&] { return RunRawClient(rc); });

  FabricConfig f9;
  f9.socket_path = std::string(dir) + "/fab9000.sock";
  f9.tag = tag + "j";
  f9.mtu = 9000;
  f9.key = fab::FrameKey::Generate();
  f9.run = run;
  PingpongStats fab9 = RunPair([&] { return FabricServer(f9); }, [&] { return FabricClient(f9); });
  FabricConfig f15 = f9;
  f15.socket_path = std::string(dir) + "/fab1500.sock";
  f15.tag = tag + "m";
  f15.mtu = 1500;
  PingpongStats fab15 =
      RunPair([&] { return FabricServer(f15); }, [&] { return FabricClient(f15); });
  rmdir(dir);

  PrintStats("raw DPDK memif", raw);
  PrintStats("fabric memif mtu 9000", fab9);
  PrintStats("fabric memif mtu 1500", fab15);
  Ratio("mtu 9000 (1 frame)", fab9, raw);
  Ratio("mtu 1500 (3 frames)", fab15, raw);
  std::printf(
      "  per page fetch the fabric adds: MAC on send %.2f us + MAC check %.2f us (AES-256-GMAC "
      "over the page frame), body build %.2f us, body validation (ReceivedMessage::Parse incl. "
      "a 4 KiB copy) %.2f us (fuller breakdown: //bench:fabric_cost_bench)\n",
      costs.mac_us, costs.verify_us, costs.build_us, costs.parse_us);
  return raw.ok && fab9.ok && fab15.ok ? 0 : 1;
}

}  // namespace
}  // namespace amalgam::bench

int main(int argc, char** argv) { return amalgam::bench::Main(argc, argv); }
