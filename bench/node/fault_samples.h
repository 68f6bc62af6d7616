// Samples and report of remote_fault_bench: touch records, NodeRuntime trace steps and fabric
// events of one round turned into per-step latencies; median / p99 tables and ratios printed.
// Plain data and pure functions (benchmarks only; no threads).
#ifndef AMALGAM_BENCH_NODE_FAULT_SAMPLES_H_
#define AMALGAM_BENCH_NODE_FAULT_SAMPLES_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "bench/node/timed_transport.h"
#include "vmm/node/node_runtime.h"

namespace amalgam::bench {

using Samples = std::vector<double>;  // microseconds

struct Dist {
  size_t n = 0;
  double p50 = 0, p99 = 0;
};
Dist Of(Samples v);
// "  <name>  n=.. median .. us   p99 .. us", one line.
void Line(const char* name, const Dist& d);

enum class Kind { kLocalHomeRead = 0, kRemoteRead = 1, kRemoteWrite = 2 };
constexpr int kKinds = 3;

// One measured access: `t0` before the load/store, `t1` after it returned (CLOCK_MONOTONIC).
struct Touch {
  Kind kind;
  uint64_t page;
  int64_t t0, t1;
};

// The steps of one fault's service, each in microseconds (a step whose timestamps are missing is
// left out). For a local-home fault there is no fabric: loop_to_sent, sent_to_grant and
// grant_to_loop stay empty and loop_to_resolved covers the directory's messages to itself.
struct Steps {
  Samples touch_to_read;       // kernel fault delivery, the fault service thread wakes and reads
  Samples read_to_loop;        // fault service -> NodeRuntime loop hand-off
  Samples loop_to_sent;        // directory, request encode + MAC, send syscall
  Samples sent_to_grant;       // fabric round trip, the home's service included
  Samples grant_to_loop;       // receive thread -> loop hand-off
  Samples loop_to_resolved;    // directory, UFFDIO_COPY (or WP off) and wake
  Samples resolved_to_resume;  // the woken thread runs again (may be < 0: it ran before the loop
                               // took its timestamp)
};

struct RuntimeSamples {
  Samples total[kKinds];
  Steps steps[kKinds];
  Samples home_read, home_write;  // at node 1: request received -> grant sent
  uint64_t bad = 0;               // reads that did not return the seeded pattern
  uint64_t errors = 0;            // NodeRuntime "errors" counter on node 0
};

// Adds one round: `trace[page]` is node 0's NodeRuntimeOptions::trace output for that page in
// order (a remote page's read fault first, then its write fault), `events` node 0's fabric
// events tagged with the index of the touch in progress.
void AddRound(const std::vector<Touch>& touches,
              const std::vector<std::vector<std::pair<vmm::node::TracePoint, int64_t>>>& trace,
              const std::vector<TimedTransport::Event>& events, RuntimeSamples* out);

void PrintReport(const Samples& uffd_floor, const Samples& tcp_floor, const RuntimeSamples& rt);

}  // namespace amalgam::bench

#endif  // AMALGAM_BENCH_NODE_FAULT_SAMPLES_H_
