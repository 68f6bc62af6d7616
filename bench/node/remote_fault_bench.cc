// Remote-fault service time: a thread touches a page of userfaultfd-registered GuestMemory on
// node 0 (NodeRuntime) whose home is node 1, another process over the real TcpTransport on
// loopback; touch -> resume, with its breakdown (NodeRuntimeOptions::trace on node 0, a
// TimedTransport on both nodes). The floor is measured in the same run, alternating rounds: a
// local userfaultfd fault resolved by UFFDIO_COPY from a bare host thread (bench/uffd) plus a raw
// TCP ping-pong with a 4 KiB reply (bench/fabric_tcp_bench, no amalgam code). Host threads, not a
// KVM guest (a vCPU's fault adds KVM's exit to the same path; see bench/uffd's guest bench).
// Prints median / p99 of everything and the ratios. Never asserts.
//   bazel run -c opt //bench/node:remote_fault_bench -- --pages=2000 --rounds=3
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "bench/node/fault_samples.h"
#include "bench/node/home_node.h"
#include "bench/node/timed_transport.h"
#include "bench/uffd/raw_uffd_loop.h"
#include "directory/home_map.h"
#include "fabric/schema/messages.capnp.h"
#include "fabric/tcp_transport.h"
#include "memory/guest_memory.h"
#include "vmm/node/node_runtime.h"

ABSL_FLAG(int, pages, 2000, "faults of each kind per round");
ABSL_FLAG(int, rounds, 3, "rounds; each runs the floor and the NodeRuntime side once");
ABSL_FLAG(bool, deadlock_detection, false,
          "keep Abseil's debug mutex deadlock detection on (Debian's absl enables it; release "
          "binaries, like the fabric benches, turn it off)");

namespace amalgam::bench {
namespace {

using fabric::schema::Message;
using vmm::node::TracePoint;
constexpr uint64_t kPage = 4096;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "remote_fault_bench: %s\n", what.c_str());
  std::exit(1);
}

std::unique_ptr<memory::GuestMemory> NewMemory(uint64_t pages) {
  auto mem = memory::GuestMemory::Create({{memory::GuestAddress(0), pages * kPage}});
  if (!mem.ok()) Die(mem.status().ToString());
  return std::move(*mem);
}

// The seeded content: word i of page p (checked by every read).
uint64_t Pattern(uint64_t page, uint64_t i) { return (page + 1) * 0x9E3779B97F4A7C15ull ^ i; }

volatile uint64_t* Word(memory::GuestMemory& mem, uint64_t page, uint64_t i) {
  return reinterpret_cast<volatile uint64_t*>(mem.regions()[0].host_address() + page * kPage) + i;
}

// Floor 1: a local MISSING fault, resolved by UFFDIO_COPY from a bare uffd thread.
void LocalUffdFloor(uint64_t pages, Samples* out) {
  alignas(4096) static uint8_t content[kPage];
  auto mem = NewMemory(pages);
  RawUffdLoop loop(mem->regions()[0].host_address(), pages * kPage, content);
  for (uint64_t p = 0; p < pages; ++p) {
    int64_t t0 = MonotonicNs();
    (void)*Word(*mem, p, 0);
    out->push_back((MonotonicNs() - t0) / 1e3);
  }
}

// One round of the NodeRuntime side: local-home reads of [0, pages), remote reads of
// [pages, 2 pages), then remote writes (Shared -> Modified upgrades) of the same pages.
void NodeRuntimeRound(uint64_t pages, RuntimeSamples* out) {
  const fabric::FrameKey key = fabric::FrameKey::Generate();
  auto homes = directory::StaticPartitionHomeMap::Even(2 * pages, 2);
  if (!homes.ok()) Die(homes.status().ToString());
  HomeNode home(key, *homes, 1);  // single-threaded here: the previous round's threads are joined
  std::unique_ptr<fabric::TcpTransport> tcp = home.DialAsNode0();
  TimedTransport timed(tcp.get());
  auto mem = NewMemory(2 * pages);
  for (uint64_t p = 0; p < 2 * pages; ++p) {
    for (uint64_t i = 0; i < kPage / 8; ++i) *Word(*mem, p, i) = Pattern(p, i);
  }
  // Loop thread only; read after Stop(). Per page, in order: the read fault's steps, then the
  // write fault's.
  std::vector<std::vector<std::pair<TracePoint, int64_t>>> trace(2 * pages);
  vmm::node::NodeRuntimeOptions ro;
  ro.self = 0;
  ro.homes = &*homes;
  ro.transport = &timed;
  ro.memory = mem.get();
  ro.trace = [&trace](TracePoint point, directory::PageNumber page, int64_t ns) {
    if (page < trace.size()) trace[page].push_back({point, ns});
  };
  auto rt = vmm::node::NodeRuntime::Create(ro);
  if (!rt.ok()) Die(rt.status().ToString());
  if (absl::Status s = (*rt)->SeedFromGuestMemory(); !s.ok()) Die(s.ToString());
  if (absl::Status s = (*rt)->Start(); !s.ok()) Die(s.ToString());

  // Touch -> resume, on this thread; tag = the fault's index for the transport's events.
  std::vector<Touch> touches;
  auto touch = [&](Kind kind, uint64_t page, bool write) {
    timed.set_tag(static_cast<int64_t>(touches.size()));
    Touch t{kind, page, MonotonicNs(), 0};
    if (write) {
      *Word(*mem, page, 1) = ~Pattern(page, 1);
    } else if (*Word(*mem, page, 0) != Pattern(page, 0)) {
      out->bad++;
    }
    t.t1 = MonotonicNs();
    touches.push_back(t);
  };
  for (uint64_t p = 0; p < pages; ++p) touch(Kind::kLocalHomeRead, p, false);
  for (uint64_t p = pages; p < 2 * pages; ++p) touch(Kind::kRemoteRead, p, false);
  for (uint64_t p = pages; p < 2 * pages; ++p) touch(Kind::kRemoteWrite, p, true);
  timed.set_tag(-1);

  home.Leave(**rt);
  std::map<std::string, uint64_t> metrics = (*rt)->Metrics();
  (*rt)->Stop();
  tcp->Close();
  out->errors += metrics["errors"];

  std::vector<double> at_home = home.Finish();
  for (size_t i = 0; i < at_home.size(); ++i) {
    (i < pages ? out->home_read : out->home_write).push_back(at_home[i]);
  }
  AddRound(touches, trace, timed.TakeEvents(), out);
}

}  // namespace
}  // namespace amalgam::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  using namespace amalgam::bench;
  const int pages = absl::GetFlag(FLAGS_pages);
  const int rounds = absl::GetFlag(FLAGS_rounds);
  if (pages < 1 || rounds < 1) Die("--pages and --rounds must be >= 1");
  const bool deadlock_detection = absl::GetFlag(FLAGS_deadlock_detection);
  if (!deadlock_detection) absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  Samples uffd_floor, tcp_floor;
  RuntimeSamples rt;
  for (int r = 0; r < rounds; ++r) {  // alternate so load changes hit every side alike
    LocalUffdFloor(pages, &uffd_floor);
    RawTcpFloor(pages, &tcp_floor);
    NodeRuntimeRound(pages, &rt);
  }
  std::printf(
      "remote_fault_bench: host thread touches userfaultfd-registered GuestMemory through "
      "NodeRuntime (node 0); the page's home is node 1, another process over TcpTransport on "
      "loopback (not a KVM guest). %d faults of each kind x %d rounds, alternating with the "
      "floor. absl deadlock detection %s.\n",
      pages, rounds, deadlock_detection ? "on" : "off");
  PrintReport(uffd_floor, tcp_floor, rt);
  return 0;
}
