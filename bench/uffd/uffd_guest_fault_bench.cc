// Guest-measured fault service time on a real KVM vCPU: a real-mode guest reads (MISSING) and then
// writes (WP) each of 32 registered memfd pages, timing each access with rdtsc around it. Served
// by PageFaultService and, alternating rounds in the same run, by the bare RawUffdLoop (floor).
// Real mode is emulated on PVM hosts, so absolute numbers include emulation; compare the ratio.
//   bazel run -c opt //bench/uffd:uffd_guest_fault_bench -- [rounds]
#include <sys/mman.h>
#include <time.h>
#include <x86intrin.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "bench/uffd/raw_uffd_loop.h"
#include "bench/uffd/real_mode_touch_guest.h"
#include "memory/page_fault_service.h"
#include "vcpu/runner.h"
#include "vcpu/test_vm.h"

namespace amalgam {
namespace {

using memory::GuestAddress;
using memory::kPageSize;

using bench::kCode;
using bench::kDataGpa;
using bench::kGuest;
using bench::kPages;
using bench::kResults;
using bench::kWriteEntry;
using bench::TscPerUs;

alignas(4096) uint8_t g_content[kPageSize];

void Die(const char* what, const absl::Status& s) {
  fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
  exit(1);
}

class ImmediateHandler : public memory::PageFaultHandler {
 public:
  memory::PageFaultService* svc = nullptr;
  void OnFault(const memory::PageFault& f) override {
    absl::Status s = f.kind == memory::FaultKind::kMissing
                         ? svc->InstallShared(f.gpa, absl::MakeConstSpan(g_content, kPageSize))
                         : svc->MakeWritable(f.gpa);
    if (!s.ok()) Die("resolve", s);
  }
};

struct Samples {
  std::vector<double> missing, wp;
};

struct Bench {
  std::unique_ptr<vcpu::testing::TestVm> vm;
  std::unique_ptr<memory::GuestMemory> mem;
  std::unique_ptr<vcpu::VcpuRunner> runner;
  double tsc_per_us = 1;

  void Pass(uint64_t entry, std::vector<double>* out) {
    if (absl::Status s = vm->SetRealMode(0, entry); !s.ok()) Die("SetRealMode", s);
    auto exit = runner->Run();
    if (!exit.ok()) Die("KVM_RUN", exit.status());
    if (exit->reason != vcpu::VcpuExitReason::kHlt) {
      fprintf(stderr, "guest: %s\n", exit->ToString().c_str());
      std::exit(1);
    }
    for (uint64_t i = 0; i < kPages; ++i) {
      uint32_t cycles;
      std::memcpy(&cycles, vm->ram() + kResults + 4 * i, 4);
      out->push_back(cycles / tsc_per_us);
    }
  }
  // Both passes on fresh (removed) pages; `serve` is alive for the duration.
  void Round(Samples* out) {
    Pass(kCode, &out->missing);
    Pass(kWriteEntry, &out->wp);
  }
  void Reset() {  // no uffd registered now: drop every page so the next round faults again
    const auto& r = mem->regions()[0];
    if (madvise(r.host_address(), r.size(), MADV_REMOVE) != 0) {
      perror("madvise");
      std::exit(1);
    }
  }
};

void Print(const char* kind, std::vector<double> floor, std::vector<double> svc) {
  std::sort(floor.begin(), floor.end());
  std::sort(svc.begin(), svc.end());
  auto at = [](const std::vector<double>& v, double q) {
    return v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))];
  };
  printf(
      "%-8s floor: n=%zu median %.2f us p99 %.2f us | service: n=%zu median %.2f us p99 %.2f us"
      " | ratio median %.2fx p99 %.2fx\n",
      kind, floor.size(), at(floor, 0.5), at(floor, 0.99), svc.size(), at(svc, 0.5), at(svc, 0.99),
      at(svc, 0.5) / at(floor, 0.5), at(svc, 0.99) / at(floor, 0.99));
}

}  // namespace
}  // namespace amalgam

int main(int argc, char** argv) {
  using namespace amalgam;
  const int rounds = argc > 1 ? atoi(argv[1]) : 40;
  for (size_t i = 0; i < kPageSize; ++i) g_content[i] = static_cast<uint8_t>(i);
  Bench b;
  vcpu::testing::TestVmOptions opt;
  opt.ram_bytes = kDataGpa;
  auto vm = vcpu::testing::TestVm::Create(opt);
  if (!vm.ok()) Die("TestVm", vm.status());
  b.vm = std::move(*vm);
  b.vm->Load(kCode, kGuest);
  auto mem = memory::GuestMemory::Create({{GuestAddress(kDataGpa), kPages * kPageSize}});
  if (!mem.ok()) Die("GuestMemory", mem.status());
  b.mem = std::move(*mem);
  const auto& r = b.mem->regions()[0];
  if (absl::Status s =
          b.vm->vm().SetUserMemoryRegion({1, r.start().value(), r.size(), r.host_address(), 0});
      !s.ok()) {
    Die("slot", s);
  }
  b.runner = std::make_unique<vcpu::VcpuRunner>(&b.vm->vcpu(), nullptr, nullptr);
  b.tsc_per_us = TscPerUs();

  Samples floor, svc;
  for (int i = 0; i < rounds; ++i) {  // alternate so load changes hit both alike
    {
      bench::RawUffdLoop loop(r.host_address(), r.size(), g_content);
      b.Round(&floor);
    }
    b.Reset();
    {
      ImmediateHandler h;
      auto s = memory::PageFaultService::Create(b.mem.get(), &h);
      if (!s.ok()) Die("PageFaultService", s.status());
      h.svc = s->get();
      if (absl::Status st = (*s)->RegisterAll(); !st.ok()) Die("Register", st);
      if (absl::Status st = (*s)->Start(); !st.ok()) Die("Start", st);
      b.Round(&svc);
    }
    b.Reset();
  }
  printf(
      "uffd fault service, guest-measured (rdtsc, real mode, TSC %.0f MHz), %llu pages x %d "
      "rounds\n",
      b.tsc_per_us, static_cast<unsigned long long>(kPages), rounds);
  Print("MISSING", floor.missing, svc.missing);
  Print("WP", floor.wp, svc.wp);
  return 0;
}
