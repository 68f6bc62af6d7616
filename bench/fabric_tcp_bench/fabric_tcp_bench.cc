// 4 KiB page fetch, two processes on loopback: the amalgam TCP transport (frame, MAC, Cap'n Proto
// header, epoll receive thread) against a raw blocking TCP ping-pong (raw_tcp_pingpong.cc, no
// amalgam code), in the same run, interleaved. Prints RTT p50/p99 and pages/s of each and the
// ratios. Never asserts: numbers on a shared 2-core VM are for ratios only.
//
//   bazel run -c opt //bench/fabric_tcp_bench -- --rtt_n=20000 --seconds=3 --runs=3
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "bench/fabric_tcp_bench/raw_tcp_pingpong.h"
#include "fabric/rpc_channel.h"
#include "fabric/tcp_transport.h"

ABSL_FLAG(int, rtt_n, 20000, "round trips (one fetch in flight) per run");
ABSL_FLAG(double, seconds, 2, "seconds of windowed fetching per run (throughput)");
ABSL_FLAG(int, window, 32, "fetches in flight in the throughput phase");
ABSL_FLAG(int, runs, 3, "runs of each transport, interleaved");
ABSL_FLAG(bool, raw, true, "run the raw TCP baseline (false: amalgam only, e.g. under perf)");
ABSL_FLAG(bool, rpc, true, "also run the RpcChannel variant");
ABSL_FLAG(bool, deadlock_detection, false,
          "keep Abseil's debug-mode Mutex deadlock detection on (Debian's Abseil enables it; a "
          "release binary turns it off; it costs ~55 ns per lock, ~1 us per fetch)");
ABSL_FLAG(int, receive_spin_us, -1,
          "TcpTransportOptions::receive_spin on both nodes, in us (-1: the library default)");

namespace fabric = amalgam::fabric;
namespace bench = amalgam::bench;

namespace {

constexpr size_t kPages = 1024;  // 4 MiB page store, same bytes in both processes (fork)

struct Summary {
  std::string name;
  bool ok = false;
  std::string error;
  uint64_t n = 0, bad = 0, bw_pages = 0;
  double p50 = 0, p99 = 0, min = 0, max = 0, pages_per_s = 0;
};

Summary Summarize(const std::string& name, std::vector<double> us, uint64_t bw_pages,
                  double bw_secs, uint64_t bad) {
  Summary s;
  s.name = name;
  s.ok = !us.empty();
  std::sort(us.begin(), us.end());
  auto at = [&](double q) { return us[std::min(us.size() - 1, size_t(q * us.size()))]; };
  if (s.ok) {
    s.n = us.size();
    s.p50 = at(0.5);
    s.p99 = at(0.99);
    s.min = us.front();
    s.max = us.back();
  }
  s.bw_pages = bw_pages;
  s.pages_per_s = bw_secs > 0 ? bw_pages / bw_secs : 0;
  s.bad = bad;
  return s;
}

void Print(const Summary& s) {
  if (!s.ok) {
    std::printf("%-28s FAILED: %s\n", s.name.c_str(), s.error.c_str());
    return;
  }
  // Same line format as the DPDK page-fetch benchmarks (bench/pingpong_stats.h).
  std::printf(
      "%-28s rtt n=%llu p50=%.2fus p99=%.2fus min=%.2fus max=%.1fus | bw pages=%llu "
      "pages/s=%.0f | bad=%llu lost=0\n",
      s.name.c_str(), (unsigned long long)s.n, s.p50, s.p99, s.min, s.max,
      (unsigned long long)s.bw_pages, s.pages_per_s, (unsigned long long)s.bad);
  std::fflush(stdout);
}

double NowUs() {
  return std::chrono::duration<double, std::micro>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Runs `serve(port_pipe_write_end)` in a child; returns its pid and the port it reported.
template <typename F>
pid_t Spawn(F serve, int* port) {
  int p[2];
  if (pipe(p) != 0) return -1;
  std::fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    ::close(p[0]);
    _exit(serve(p[1]));
  }
  ::close(p[1]);
  if (::read(p[0], port, sizeof(*port)) != sizeof(*port)) *port = -1;
  ::close(p[0]);
  return pid;
}

Summary RunRaw(const std::vector<uint8_t>& store) {
  int port = -1;
  pid_t pid = Spawn([&](int fd) { return bench::RawTcpServe(store, fd); }, &port);
  bench::RawTcpResult r;
  const char* error = "server did not start";
  bool ok = port > 0 && bench::RawTcpFetch(port, store, absl::GetFlag(FLAGS_rtt_n),
                                           absl::GetFlag(FLAGS_seconds),
                                           absl::GetFlag(FLAGS_window), &r, &error);
  if (!ok) ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  Summary s = Summarize("raw_tcp (no amalgam)", r.rtt_us, r.bw_pages, r.bw_secs, r.bad);
  if (!ok) {
    s.ok = false;
    s.error = error;
  }
  return s;
}

void SetSpin(fabric::TcpTransportOptions* o) {
  int us = absl::GetFlag(FLAGS_receive_spin_us);
  if (us >= 0) o->receive_spin = absl::Microseconds(us);
}

// The amalgam side: node 1 serves PageRequests with PageGrant + page, node 0 fetches.
int AmalgamServe(const fabric::FrameKey& key, const std::vector<uint8_t>& store, int port_fd,
                 bool rpc) {
  fabric::TcpTransportOptions o;
  o.self = 1;
  o.cluster_key = key;
  SetSpin(&o);
  o.peers = {{0, "127.0.0.1:1"}};
  auto t = fabric::TcpTransport::Create(o);
  if (!t.ok()) return 1;
  int port = (*t)->listen_port();
  if (::write(port_fd, &port, sizeof(port)) != sizeof(port)) return 1;
  if (rpc) {
    // RpcChannel server: PageRequest -> PageGrant + page (borrowed from the store).
    fabric::RpcChannel channel(t->get());
    absl::Notification leave;
    channel.Handle(
        fabric::schema::Message::PAGE_REQUEST,
        [&](const fabric::ReceivedMessage& m) -> absl::StatusOr<fabric::RpcReply> {
          auto req = m.message().getPageRequest();
          fabric::RpcReply reply;
          reply.message =
              std::make_unique<capnp::MallocMessageBuilder>(fabric::kMessageFirstSegmentWords);
          auto g = reply.message->initRoot<fabric::schema::Message>().initPageGrant();
          g.setPage(req.getPage());
          g.setReqId(req.getReqId());
          g.setState(fabric::schema::PageState::SHARED);
          g.setHasData(true);
          reply.borrowed_page = absl::Span<const uint8_t>(
              store.data() + (req.getPage() % kPages) * fabric::kPageSize, fabric::kPageSize);
          return reply;
        });
    channel.SetOneWayHandler([&](fabric::ReceivedMessage) { leave.Notify(); });
    leave.WaitForNotificationWithTimeout(absl::Minutes(10));
    channel.Stop();
    (*t)->Close();
    return 0;
  }
  for (;;) {
    auto m = (*t)->Receive(absl::Seconds(30));
    if (!m.ok()) return 1;
    if (m->type() == fabric::schema::Message::LEAVE) break;
    if (m->type() != fabric::schema::Message::PAGE_REQUEST) continue;
    auto req = m->message().getPageRequest();
    capnp::MallocMessageBuilder b(fabric::kMessageFirstSegmentWords);
    auto g = b.initRoot<fabric::schema::Message>().initPageGrant();
    g.setPage(req.getPage());
    g.setReqId(req.getReqId());
    g.setState(fabric::schema::PageState::SHARED);
    g.setHasData(true);
    size_t off = (req.getPage() % kPages) * fabric::kPageSize;
    absl::Span<const uint8_t> page(store.data() + off, fabric::kPageSize);
    if (!(*t)->Send(m->source(), b, page).ok()) return 1;
  }
  (*t)->Close();
  return 0;
}

// The client half of both amalgam runs: an AmalgamServe child (node 1) and node 0 linked to it.
// Close() reaps the child: after a Leave when `said_leave`, else by SIGKILL.
struct ServerLink {
  pid_t pid = -1;
  std::unique_ptr<fabric::TcpTransport> transport;

  void Close(bool said_leave) {
    if (pid <= 0) return;
    if (!said_leave) ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    pid = -1;
  }
  // Asks the server to exit and waits for it.
  void Leave() {
    capnp::MallocMessageBuilder leave;
    leave.initRoot<fabric::schema::Message>().initLeave().setNodeId(0);
    (void)transport->Send(1, leave);
    Close(/*said_leave=*/true);
  }
};

absl::StatusOr<ServerLink> StartServer(const std::vector<uint8_t>& store, bool rpc) {
  fabric::FrameKey key = fabric::FrameKey::Generate();
  int port = -1;
  ServerLink link;
  link.pid = Spawn([&](int fd) { return AmalgamServe(key, store, fd, rpc); }, &port);
  if (port <= 0) {
    link.Close(false);
    return absl::UnavailableError("server did not start");
  }
  fabric::TcpTransportOptions o;
  o.self = 0;
  o.cluster_key = key;
  SetSpin(&o);
  o.peers = {{1, absl::StrCat("127.0.0.1:", port)}};
  auto t = fabric::TcpTransport::Create(o);
  if (!t.ok() || !(*t)->WaitForPeer(1, absl::Seconds(20)).ok()) {
    link.Close(false);
    return absl::UnavailableError("no link");
  }
  link.transport = std::move(*t);
  return link;
}

// Page fetches through RpcChannel::Call (what the directory uses): one in flight, RTT only.
Summary RunAmalgamRpc(const std::vector<uint8_t>& store) {
  Summary s;
  s.name = "amalgam_tcp_rpc (RpcChannel)";
  absl::StatusOr<ServerLink> link = StartServer(store, /*rpc=*/true);
  auto fail = [&](const std::string& why) {
    s.ok = false;
    s.error = why;
    if (link.ok()) link->Close(/*said_leave=*/false);
    return s;
  };
  if (!link.ok()) return fail(std::string(link.status().message()));
  fabric::TcpTransport* t = link->transport.get();
  std::vector<double> us;
  uint64_t bad = 0;
  {
    fabric::RpcChannel channel(t);
    for (int i = 0; i < absl::GetFlag(FLAGS_rtt_n); ++i) {
      capnp::MallocMessageBuilder b(fabric::kMessageFirstSegmentWords);
      auto r = b.initRoot<fabric::schema::Message>().initPageRequest();
      r.setPage(i);
      r.setReqId(i);
      double t0 = NowUs();
      auto m = channel.Call(1, b, absl::Seconds(10));
      if (!m.ok()) return fail("rpc: " + m.status().ToString());
      us.push_back(NowUs() - t0);
      if (m->page().size() != fabric::kPageSize ||
          std::memcmp(m->page().data(), store.data() + (i % kPages) * fabric::kPageSize,
                      fabric::kPageSize) != 0) {
        ++bad;
      }
    }
  }
  link->Leave();
  return Summarize(s.name, us, 0, 0, bad);
}

Summary RunAmalgam(const std::vector<uint8_t>& store) {
  Summary s;
  s.name = "amalgam_tcp (fabric)";
  absl::StatusOr<ServerLink> link = StartServer(store, /*rpc=*/false);
  auto fail = [&](const std::string& why) {
    s.ok = false;
    s.error = why;
    if (link.ok()) link->Close(/*said_leave=*/false);
    return s;
  };
  if (!link.ok()) return fail(std::string(link.status().message()));
  fabric::TcpTransport* t = link->transport.get();
  uint64_t bad = 0;
  auto request = [&](uint64_t page) {
    capnp::MallocMessageBuilder b(fabric::kMessageFirstSegmentWords);
    auto r = b.initRoot<fabric::schema::Message>().initPageRequest();
    r.setPage(page);
    r.setReqId(page);
    r.setRequester(0);
    return t->Send(1, b).ok();
  };
  auto reply = [&]() {
    auto m = t->Receive(absl::Seconds(10));
    if (!m.ok()) return false;
    uint64_t page = m->message().getPageGrant().getPage();
    if (m->page().size() != fabric::kPageSize ||
        std::memcmp(m->page().data(), store.data() + (page % kPages) * fabric::kPageSize,
                    fabric::kPageSize) != 0) {
      ++bad;
    }
    return true;
  };
  std::vector<double> us;
  for (int i = 0; i < absl::GetFlag(FLAGS_rtt_n); ++i) {
    double t0 = NowUs();
    if (!request(i) || !reply()) return fail("rtt phase: fetch failed");
    us.push_back(NowUs() - t0);
  }
  double start = NowUs(), end = start + absl::GetFlag(FLAGS_seconds) * 1e6;
  uint64_t next = 0, inflight = 0, done = 0;
  for (;;) {
    bool more = NowUs() < end;
    while (more && inflight < static_cast<uint64_t>(absl::GetFlag(FLAGS_window))) {
      if (!request(next++)) return fail("bw phase: send failed");
      ++inflight;
    }
    if (inflight == 0) break;
    if (!reply()) return fail("bw phase: reply lost");
    --inflight;
    ++done;
  }
  double secs = (NowUs() - start) / 1e6;
  link->Leave();
  s = Summarize(s.name, us, done, secs, bad);
  if (t->GetStats().drops.Total() != 0) {
    std::printf("note: client drops: %s\n", t->GetStats().drops.ToString().c_str());
  }
  return s;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  // Inherited by the forked server processes.
  if (!absl::GetFlag(FLAGS_deadlock_detection)) {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  }
  std::vector<uint8_t> store(kPages * fabric::kPageSize);
  for (size_t i = 0; i < store.size(); ++i) store[i] = static_cast<uint8_t>(i * 2654435761u >> 13);
  std::printf(
      "fabric_tcp_bench: 4 KiB page fetch, 2 processes, TCP loopback, TCP_NODELAY, blocking "
      "receive; rtt_n=%d, %.1f s x window %d, %d runs each (interleaved); Abseil deadlock "
      "detection %s\n",
      absl::GetFlag(FLAGS_rtt_n), absl::GetFlag(FLAGS_seconds), absl::GetFlag(FLAGS_window),
      absl::GetFlag(FLAGS_runs), absl::GetFlag(FLAGS_deadlock_detection) ? "on" : "off");
  std::vector<double> raw_p50, raw_p99, raw_bw, am_p50, am_p99, am_bw, rpc_p50;
  for (int run = 0; run < absl::GetFlag(FLAGS_runs); ++run) {
    Summary raw;
    if (absl::GetFlag(FLAGS_raw)) {
      raw = RunRaw(store);
      Print(raw);
    }
    Summary am = RunAmalgam(store);
    Print(am);
    Summary rpc;
    if (absl::GetFlag(FLAGS_rpc)) {
      rpc = RunAmalgamRpc(store);
      Print(rpc);
    }
    if (rpc.ok) rpc_p50.push_back(rpc.p50);
    if (raw.ok) {
      raw_p50.push_back(raw.p50);
      raw_p99.push_back(raw.p99);
      raw_bw.push_back(raw.pages_per_s);
    }
    if (am.ok) {
      am_p50.push_back(am.p50);
      am_p99.push_back(am.p99);
      am_bw.push_back(am.pages_per_s);
    }
  }
  if (raw_p50.empty() || am_p50.empty()) {
    std::printf("ratio: not available (a side failed)\n");
    return 0;
  }
  std::printf(
      "median of runs: raw p50=%.2fus p99=%.2fus pages/s=%.0f | amalgam p50=%.2fus p99=%.2fus "
      "pages/s=%.0f\n",
      Median(raw_p50), Median(raw_p99), Median(raw_bw), Median(am_p50), Median(am_p99),
      Median(am_bw));
  std::printf("ratio amalgam/raw: rtt p50 %.2fx, rtt p99 %.2fx, pages/s %.2fx\n",
              Median(am_p50) / Median(raw_p50), Median(am_p99) / Median(raw_p99),
              Median(raw_bw) > 0 ? Median(am_bw) / Median(raw_bw) : 0.0);
  if (!rpc_p50.empty()) {
    std::printf("ratio amalgam RpcChannel/raw: rtt p50 %.2fx\n", Median(rpc_p50) / Median(raw_p50));
  }
  return 0;
}
