// Remote-fault service time seen by a real KVM vCPU: a real-mode guest (bench/uffd's touch
// guest) reads, then writes, one dword of each of 32 pages whose home is node 1 (another process,
// TcpTransport on loopback); node 0's NodeRuntime serves the faults on the vCPU's RAM slot. Each
// access is timed by the guest with rdtsc. Floor, same run, alternating rounds: the same guest on
// a local userfaultfd (bare UFFDIO_COPY thread) plus a raw TCP 4 KiB round trip. Real mode is
// emulated on PVM hosts, so both sides carry that cost; compare the ratio. Never asserts.
//   bazel run -c opt //bench/node:remote_guest_fault_bench -- --rounds=40
#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "bench/node/fault_samples.h"
#include "bench/node/home_node.h"
#include "bench/uffd/raw_uffd_loop.h"
#include "bench/uffd/real_mode_touch_guest.h"
#include "directory/home_map.h"
#include "fabric/schema/messages.capnp.h"
#include "fabric/tcp_transport.h"
#include "memory/guest_memory.h"
#include "vcpu/runner.h"
#include "vcpu/test_vm.h"
#include "vmm/node/node_runtime.h"

ABSL_FLAG(int, rounds, 40, "rounds of 32 pages; each runs the floor and the remote side once");

namespace amalgam::bench {
namespace {

constexpr uint64_t kPage = 4096;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "remote_guest_fault_bench: %s\n", what.c_str());
  std::exit(1);
}

uint32_t Pattern(uint64_t page) { return static_cast<uint32_t>(0xC0DE0000u + page); }

struct Guest {
  std::unique_ptr<vcpu::testing::TestVm> vm;
  std::unique_ptr<memory::GuestMemory> mem;  // the data slot at kDataGpa
  std::unique_ptr<vcpu::VcpuRunner> runner;
  double tsc_per_us = 1;

  uint8_t* Page(uint64_t i) { return mem->regions()[0].host_address() + i * kPage; }
  // One pass of the guest from `entry`; appends its per-page access times.
  void Pass(uint64_t entry, Samples* out) {
    if (absl::Status s = vm->SetRealMode(0, entry); !s.ok()) Die(s.ToString());
    auto exit = runner->Run();
    if (!exit.ok()) Die(exit.status().ToString());
    if (exit->reason != vcpu::VcpuExitReason::kHlt) Die("guest: " + exit->ToString());
    for (uint64_t i = 0; i < kPages; ++i) {
      uint32_t cycles;
      std::memcpy(&cycles, vm->ram() + kResults + 4 * i, 4);
      out->push_back(cycles / tsc_per_us);
    }
  }
  void DropAll() {  // no uffd registered now: the next round faults on every page again
    const auto& r = mem->regions()[0];
    if (madvise(r.host_address(), r.size(), MADV_REMOVE) != 0) Die("madvise(MADV_REMOVE)");
  }
};

struct Remote {
  Samples read, write, at_home;
  uint64_t bad = 0, errors = 0;
};

// One round with node 0's NodeRuntime on the guest's data slot and node 1 homing those pages.
void RemoteRound(Guest& g, const directory::StaticPartitionHomeMap& homes, Remote* out) {
  const fabric::FrameKey key = fabric::FrameKey::Generate();
  HomeNode home(key, homes, 1);
  std::unique_ptr<fabric::TcpTransport> tcp = home.DialAsNode0();
  for (uint64_t i = 0; i < kPages; ++i) {
    for (uint64_t w = 0; w < kPage / 4; ++w) {
      const uint32_t v = Pattern(i) ^ static_cast<uint32_t>(w);
      std::memcpy(g.Page(i) + 4 * w, &v, 4);
    }
  }
  vmm::node::NodeRuntimeOptions ro;
  ro.self = 0;
  ro.homes = &homes;
  ro.transport = tcp.get();
  ro.memory = g.mem.get();
  auto rt = vmm::node::NodeRuntime::Create(ro);
  if (!rt.ok()) Die(rt.status().ToString());
  if (absl::Status s = (*rt)->SeedFromGuestMemory(); !s.ok()) Die(s.ToString());  // to node 1
  if (absl::Status s = (*rt)->Start(); !s.ok()) Die(s.ToString());
  g.Pass(kCode, &out->read);
  for (uint64_t i = 0; i < kPages; ++i) {  // mapped Shared now: the host reads without a fault
    uint32_t v;
    std::memcpy(&v, g.Page(i), 4);
    if (v != Pattern(i)) out->bad++;
  }
  g.Pass(kWriteEntry, &out->write);
  home.Leave(**rt);
  out->errors += (*rt)->Metrics()["errors"];
  (*rt)->Stop();
  tcp->Close();
  Samples h = home.Finish();
  out->at_home.insert(out->at_home.end(), h.begin(), h.end());
}

}  // namespace
}  // namespace amalgam::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  using namespace amalgam;
  using namespace amalgam::bench;
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);  // as a release binary
  const int rounds = absl::GetFlag(FLAGS_rounds);
  if (rounds < 1) Die("--rounds must be >= 1");
  Guest g;
  vcpu::testing::TestVmOptions opt;
  opt.ram_bytes = kDataGpa;
  auto vm = vcpu::testing::TestVm::Create(opt);
  if (!vm.ok()) Die(vm.status().ToString());
  g.vm = std::move(*vm);
  g.vm->Load(kCode, kGuest);
  auto mem = memory::GuestMemory::Create({{memory::GuestAddress(kDataGpa), kPages * kPage}});
  if (!mem.ok()) Die(mem.status().ToString());
  g.mem = std::move(*mem);
  const auto& r = g.mem->regions()[0];
  if (absl::Status s =
          g.vm->vm().SetUserMemoryRegion({1, r.start().value(), r.size(), r.host_address(), 0});
      !s.ok()) {
    Die(s.ToString());
  }
  g.runner = std::make_unique<vcpu::VcpuRunner>(&g.vm->vcpu(), nullptr, nullptr);
  g.tsc_per_us = TscPerUs();
  // Node 0 homes one page outside the slot (a home share of its own); node 1 the guest's pages.
  auto homes =
      directory::StaticPartitionHomeMap::Create({{0, 1, 0}, {kDataGpa / kPage, kPages, 1}}, 2);
  if (!homes.ok()) Die(homes.status().ToString());

  alignas(4096) static uint8_t content[kPage];
  Samples uffd_floor, tcp_floor;
  Remote remote;
  for (int i = 0; i < rounds; ++i) {  // alternate so load changes hit every side alike
    {
      RawUffdLoop loop(r.host_address(), r.size(), content);
      g.Pass(kCode, &uffd_floor);
    }
    g.DropAll();
    RawTcpFloor(kPages, &tcp_floor);
    RemoteRound(g, *homes, &remote);
    g.DropAll();
  }
  const Dist uffd = Of(uffd_floor), tcp = Of(tcp_floor), read = Of(remote.read);
  const Dist floor{std::min(uffd.n, tcp.n), uffd.p50 + tcp.p50, uffd.p99 + tcp.p99};
  std::printf(
      "remote_guest_fault_bench: a KVM vCPU (real mode, TSC %.0f MHz) touches 32 pages homed on "
      "node 1 (another process, TcpTransport on loopback) through node 0's NodeRuntime; "
      "guest-measured (rdtsc), %d rounds alternating with the floor.\n",
      g.tsc_per_us, rounds);
  std::printf("floor, same run (no amalgam code):\n");
  Line("same guest, local uffd MISSING fault, bare UFFDIO_COPY", uffd);
  Line("raw TCP ping-pong, 16 B request / 4 KiB reply", tcp);
  Line("floor = local guest fault + raw TCP round trip (sums)", floor);
  std::printf("NodeRuntime, guest access -> resumed:\n");
  Line("read miss, home on node 1 (4 KiB grant)", read);
  Line("write to a Shared page, home on node 1 (upgrade)", Of(remote.write));
  Line("  at node 1: request in -> grant sent", Of(remote.at_home));
  std::printf("ratio remote read miss / floor: median %.2fx  p99 %.2fx\n",
              floor.p50 > 0 ? read.p50 / floor.p50 : 0, floor.p99 > 0 ? read.p99 / floor.p99 : 0);
  std::printf("checks: bad reads %llu, NodeRuntime errors %llu\n",
              static_cast<unsigned long long>(remote.bad),
              static_cast<unsigned long long>(remote.errors));
  return 0;
}
