#include "bench/node/fault_samples.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "fabric/schema/messages.capnp.h"

namespace amalgam::bench {

namespace {

using vmm::node::TracePoint;

// The `nth` time `point` was traced for a page, or 0.
int64_t Nth(const std::vector<std::pair<TracePoint, int64_t>>& steps, TracePoint point, int nth) {
  for (const auto& [p, ns] : steps) {
    if (p == point && nth-- == 0) return ns;
  }
  return 0;
}

void Add(Samples* s, int64_t from, int64_t to) {
  if (from > 0 && to > 0) s->push_back((to - from) / 1e3);
}

void StepLines(const Steps& s, bool fabric) {
  Line("touch -> uffd read (kernel delivery, service thread wakes)", Of(s.touch_to_read));
  Line("uffd read -> NodeRuntime loop (hand-off)", Of(s.read_to_loop));
  if (fabric) {
    Line("loop -> request sent (directory, encode, MAC, send)", Of(s.loop_to_sent));
    Line("request sent -> grant received (fabric round trip)", Of(s.sent_to_grant));
    Line("grant received -> loop (hand-off)", Of(s.grant_to_loop));
    Line("loop -> installed + woken (directory, uffd ioctl)", Of(s.loop_to_resolved));
  } else {
    Line("loop -> installed + woken (directory to itself, UFFDIO_COPY)", Of(s.loop_to_resolved));
  }
  Line("installed -> toucher resumed (scheduler)", Of(s.resolved_to_resume));
}

}  // namespace

Dist Of(Samples v) {
  Dist d;
  d.n = v.size();
  if (v.empty()) return d;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))]; };
  d.p50 = at(0.5);
  d.p99 = at(0.99);
  return d;
}

void Line(const char* name, const Dist& d) {
  std::printf("  %-58s n=%-6zu median %8.2f us   p99 %8.2f us\n", name, d.n, d.p50, d.p99);
}

void AddRound(const std::vector<Touch>& touches,
              const std::vector<std::vector<std::pair<TracePoint, int64_t>>>& trace,
              const std::vector<TimedTransport::Event>& events, RuntimeSamples* out) {
  // Node 0's first PageRequest sent and first PageGrant received while touch i was in progress.
  std::map<int64_t, int64_t> sent, granted;
  for (const TimedTransport::Event& e : events) {
    if (e.tag < 0) continue;
    if (e.sent && e.type == fabric::schema::Message::PAGE_REQUEST) sent.emplace(e.tag, e.ns);
    if (!e.sent && e.type == fabric::schema::Message::PAGE_GRANT) granted.emplace(e.tag, e.ns);
  }
  auto at = [](const std::map<int64_t, int64_t>& m, int64_t k) {
    auto it = m.find(k);
    return it == m.end() ? int64_t{0} : it->second;
  };
  for (size_t i = 0; i < touches.size(); ++i) {
    const Touch& t = touches[i];
    const int k = static_cast<int>(t.kind);
    out->total[k].push_back((t.t1 - t.t0) / 1e3);
    if (t.page >= trace.size()) continue;
    const auto& tr = trace[t.page];
    const int nth = t.kind == Kind::kRemoteWrite ? 1 : 0;  // the page's second fault
    const int64_t read = Nth(tr, TracePoint::kFaultRead, nth);
    const int64_t loop = Nth(tr, TracePoint::kFaultLoop, nth);
    const int64_t resolved = Nth(tr, TracePoint::kResolved, nth);
    Steps& s = out->steps[k];
    Add(&s.touch_to_read, t.t0, read);
    Add(&s.read_to_loop, read, loop);
    if (t.kind == Kind::kLocalHomeRead) {
      Add(&s.loop_to_resolved, loop, resolved);
    } else {
      const int64_t inbound = Nth(tr, TracePoint::kInboundLoop, nth);
      const int64_t req = at(sent, static_cast<int64_t>(i));
      const int64_t grant = at(granted, static_cast<int64_t>(i));
      Add(&s.loop_to_sent, loop, req);
      Add(&s.sent_to_grant, req, grant);
      Add(&s.grant_to_loop, grant, inbound);
      Add(&s.loop_to_resolved, inbound, resolved);
    }
    Add(&s.resolved_to_resume, resolved, t.t1);
  }
}

void PrintReport(const Samples& uffd_floor, const Samples& tcp_floor, const RuntimeSamples& rt) {
  const Dist uffd = Of(uffd_floor), tcp = Of(tcp_floor);
  const Dist floor{std::min(uffd.n, tcp.n), uffd.p50 + tcp.p50, uffd.p99 + tcp.p99};
  std::printf("floor, same run (no amalgam code):\n");
  Line("local uffd MISSING fault, bare thread UFFDIO_COPY", uffd);
  Line("raw TCP ping-pong, 16 B request / 4 KiB reply, 2 processes", tcp);
  Line("floor = local uffd fault + raw TCP round trip (sums)", floor);

  const Dist remote = Of(rt.total[static_cast<int>(Kind::kRemoteRead)]);
  const Dist local = Of(rt.total[static_cast<int>(Kind::kLocalHomeRead)]);
  const Dist write = Of(rt.total[static_cast<int>(Kind::kRemoteWrite)]);
  std::printf("NodeRuntime faults, touch -> resume:\n");
  Line("read miss, home on node 1 (4 KiB grant over TCP)", remote);
  Line("read miss, home on node 0 itself (no fabric)", local);
  Line("write to a Shared page, home on node 1 (upgrade, no data)", write);
  auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
  std::printf("ratio remote read miss / floor: median %.2fx  p99 %.2fx\n",
              ratio(remote.p50, floor.p50), ratio(remote.p99, floor.p99));
  std::printf("ratio local-home read miss / local uffd fault: median %.2fx  p99 %.2fx\n",
              ratio(local.p50, uffd.p50), ratio(local.p99, uffd.p99));

  std::printf("breakdown, remote read miss (per-step median / p99; medians need not add up):\n");
  StepLines(rt.steps[static_cast<int>(Kind::kRemoteRead)], true);
  Line("  of the round trip, at node 1: request in -> grant sent", Of(rt.home_read));
  std::printf("breakdown, remote write upgrade:\n");
  StepLines(rt.steps[static_cast<int>(Kind::kRemoteWrite)], true);
  Line("  of the round trip, at node 1: request in -> grant sent", Of(rt.home_write));
  std::printf("breakdown, local-home read miss:\n");
  StepLines(rt.steps[static_cast<int>(Kind::kLocalHomeRead)], false);
  std::printf("checks: bad reads %llu, NodeRuntime errors %llu\n",
              static_cast<unsigned long long>(rt.bad), static_cast<unsigned long long>(rt.errors));
}

}  // namespace amalgam::bench
