// Rough numbers for the README/report (prints, never asserts): PIO exit round trip through
// VcpuRunner + Bus, and VcpuState capture / serialize / restore cost and size.
//   bazel run //vcpu:vcpu_bench
#include <chrono>
#include <cstdio>
#include <cstring>

#include "vcpu/runner.h"
#include "vcpu/test_vm.h"
#include "vcpu/vcpu_state.h"

namespace {

using amalgam::vcpu::Bus;
using amalgam::vcpu::BusDevice;
using amalgam::vcpu::StopFlag;
using amalgam::vcpu::VcpuRunner;
using Clock = std::chrono::steady_clock;

class CountToStop : public BusDevice {
 public:
  CountToStop(std::shared_ptr<StopFlag> stop, int n) : stop_(std::move(stop)), left_(n) {}
  void Read(uint64_t, absl::Span<uint8_t> d) override {}
  void Write(uint64_t, absl::Span<const uint8_t>) override {
    if (--left_ == 0) stop_->Request(0);
  }

 private:
  std::shared_ptr<StopFlag> stop_;
  int left_;
};

double Us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

}  // namespace

int main() {
  amalgam::vcpu::testing::TestVmOptions opt;
  opt.irqchip = true;
  auto vm = amalgam::vcpu::testing::TestVm::Create(opt);
  if (!vm.ok()) {
    std::fprintf(stderr, "%s\n", vm.status().ToString().c_str());
    return 1;
  }
  (*vm)->Load(0x1000, {0xe6, 0x10, 0xeb, 0xfc});  // out 0x10, al ; jmp back
  (void)(*vm)->SetRealMode(0, 0x1000);
  const int kExits = 20000;
  auto stop = std::make_shared<StopFlag>();
  auto pio = std::make_shared<Bus>();
  (void)pio->Insert(std::make_shared<CountToStop>(stop, kExits), 0x10, 1);
  VcpuRunner runner(&(*vm)->vcpu(), pio, nullptr, stop);
  auto t0 = Clock::now();
  auto exit = runner.Run();
  auto t1 = Clock::now();
  if (!exit.ok()) return 1;
  std::printf("pio exits: %d in %.1f ms = %.2f us per exit (real-mode guest, ring 0)\n", kExits,
              Us(t1 - t0) / 1000, Us(t1 - t0) / kExits);

  auto all = (*vm)->kvm().GetMsrIndexList();
  auto msrs = amalgam::vcpu::ReadableMsrs((*vm)->vcpu(), *all);
  const int kRounds = 200;
  std::vector<uint8_t> bytes;
  auto c0 = Clock::now();
  for (int i = 0; i < kRounds; ++i) {
    auto st = amalgam::vcpu::CaptureVcpuState((*vm)->vcpu(), *msrs, true);
    if (!st.ok()) return 1;
    bytes = amalgam::vcpu::SerializeVcpuState(*st);
  }
  auto c1 = Clock::now();
  auto parsed = amalgam::vcpu::DeserializeVcpuState(bytes);
  if (!parsed.ok()) return 1;
  auto r0 = Clock::now();
  for (int i = 0; i < kRounds; ++i) {
    if (!amalgam::vcpu::RestoreVcpuState((*vm)->vcpu(), *parsed).ok()) return 1;
  }
  auto r1 = Clock::now();
  std::printf("vcpu state: %zu bytes serialized (%zu MSRs, %zu CPUID entries, xsave %zu B)\n",
              bytes.size(), parsed->msrs.size(), parsed->cpuid.size(), parsed->xsave.size());
  std::printf("capture+serialize %.1f us, restore %.1f us (mean of %d)\n", Us(c1 - c0) / kRounds,
              Us(r1 - r0) / kRounds, kRounds);
  return 0;
}
