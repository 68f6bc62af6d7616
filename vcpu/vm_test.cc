// Real KVM: memory slots, dirty log, ioeventfd/irqfd/MSI, VM-wide state.
#include "vcpu/vm.h"

#include <grp.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "vcpu/cpuid.h"
#include "vcpu/runner.h"
#include "vcpu/test_vm.h"
#include "vcpu/vcpu.h"
#include "vcpu/vcpu_state.h"
#include "vcpu/vm.h"

namespace amalgam::vcpu {
namespace {

TEST_CASE("memory slots: alignment is checked, dirty log needs the flag") {
  auto kvm = Kvm::Open();
  REQUIRE(kvm.ok());
  auto vm = Vm::Create(**kvm);
  REQUIRE(vm.ok());
  void* ram = mmap(nullptr, 0x10000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(ram != MAP_FAILED);
  MemorySlot bad{0, 0x800, 0x1000, ram, 0};
  CHECK((*vm)->SetUserMemoryRegion(bad).code() == absl::StatusCode::kInvalidArgument);
  MemorySlot good{1, 0x100000, 0x10000, ram, 0};
  REQUIRE((*vm)->SetUserMemoryRegion(good).ok());
  CHECK((*vm)->GetMemorySlot(1).has_value());
  CHECK((*vm)->GetDirtyLog(1).status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK((*vm)->GetDirtyLog(7).status().code() == absl::StatusCode::kNotFound);
  MemorySlot overlap{2, 0x108000, 0x1000, ram, 0};
  CHECK_FALSE((*vm)->SetUserMemoryRegion(overlap).ok());
  REQUIRE((*vm)->DeleteMemoryRegion(1).ok());
  CHECK_FALSE((*vm)->GetMemorySlot(1).has_value());
  munmap(ram, 0x10000);
}

TEST_CASE("GetDirtyLog reports the pages a guest wrote") {
  testing::TestVmOptions opt;
  opt.ram_bytes = 0x100000;
  auto vm = testing::TestVm::Create(opt);
  REQUIRE(vm.ok());
  // Clear the log, then: mov byte [0x5000], 1 ; mov byte [0x9000], 1 ; hlt
  REQUIRE((*vm)->vm().GetDirtyLog(0).ok());
  (*vm)->Load(0x1000, {0xc6, 0x06, 0x00, 0x50, 0x01, 0xc6, 0x06, 0x00, 0x90, 0x01, 0xf4});
  REQUIRE((*vm)->SetRealMode(0, 0x1000).ok());
  REQUIRE((*vm)->vm().GetDirtyLog(0).ok());  // reset whatever Load touched
  VcpuRunner runner(&(*vm)->vcpu(), nullptr, nullptr);
  auto exit = runner.Run();
  REQUIRE(exit.ok());
  REQUIRE(exit->reason == VcpuExitReason::kHlt);
  auto log = (*vm)->vm().GetDirtyLog(0);
  REQUIRE(log.ok());
  REQUIRE(log->size() == 4);  // 256 pages
  CHECK(((*log)[0] >> 5) & 1);
  CHECK(((*log)[0] >> 9) & 1);
  CHECK_FALSE(((*log)[0] >> 6) & 1);
}

TEST_CASE("an ioeventfd takes a guest port write in-kernel; the bus never sees it") {
  testing::TestVmOptions opt;
  opt.irqchip = true;  // ioeventfd needs no irqchip, but this is the VMM's configuration
  auto vm = testing::TestVm::Create(opt);
  REQUIRE(vm.ok());
  int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  REQUIRE(efd >= 0);
  Vm::IoeventfdSpec spec;
  spec.eventfd = efd;
  spec.addr = 0x99;
  spec.len = 1;
  spec.pio = true;
  REQUIRE((*vm)->vm().RegisterIoeventfd(spec).ok());
  // out 0x99, al ; out 0x99, al ; out 0x10, al ; jmp .   (the last OUT stops the VM)
  (*vm)->Load(0x1000, {0xe6, 0x99, 0xe6, 0x99, 0xe6, 0x10, 0xeb, 0xfe});
  REQUIRE((*vm)->SetRealMode(0, 0x1000).ok());
  auto stop = std::make_shared<StopFlag>();
  class Stopper : public BusDevice {
   public:
    explicit Stopper(std::shared_ptr<StopFlag> s) : s_(std::move(s)) {}
    void Read(uint64_t, absl::Span<uint8_t>) override {}
    void Write(uint64_t, absl::Span<const uint8_t>) override { s_->Request(1); }
    std::shared_ptr<StopFlag> s_;
  };
  auto pio = std::make_shared<Bus>();
  auto rec = std::make_shared<testing::RecordingDevice>();
  REQUIRE(pio->Insert(rec, 0x99, 1).ok());
  REQUIRE(pio->Insert(std::make_shared<Stopper>(stop), 0x10, 1).ok());
  VcpuRunner runner(&(*vm)->vcpu(), pio, nullptr, stop);
  auto exit = runner.Run();
  REQUIRE(exit.ok());
  CHECK(exit->reason == VcpuExitReason::kStopRequested);
  uint64_t count = 0;
  REQUIRE(read(efd, &count, sizeof(count)) == sizeof(count));
  CHECK(count == 2);
  CHECK(rec->accesses.empty());
  CHECK(runner.stats().io_exits == 1);
  REQUIRE((*vm)->vm().UnregisterIoeventfd(spec).ok());
  CHECK_FALSE((*vm)->vm().UnregisterIoeventfd(spec).ok());  // already gone
  close(efd);
}

TEST_CASE("SignalMsi lands in the target vCPU's LAPIC IRR; irqfd registers") {
  testing::TestVmOptions opt;
  opt.irqchip = true;
  opt.num_vcpus = 2;
  auto vm = testing::TestVm::Create(opt);
  REQUIRE(vm.ok());
  // Software-enable vCPU 1's LAPIC (a reset LAPIC drops fixed interrupts).
  auto lapic = (*vm)->vcpu(1).GetLapic();
  REQUIRE(lapic.ok());
  uint32_t svr = 0x1ff;
  std::memcpy(lapic->regs + 0xf0, &svr, 4);
  REQUIRE((*vm)->vcpu(1).SetLapic(*lapic).ok());
  auto delivered = (*vm)->vm().SignalMsi(0xfee00000u | (1u << 12), 0x45);
  REQUIRE(delivered.ok());
  CHECK(*delivered);
  auto after = (*vm)->vcpu(1).GetLapic();
  REQUIRE(after.ok());
  uint32_t irr2;
  std::memcpy(&irr2, after->regs + 0x220, 4);  // IRR bits 64..95
  CHECK(((irr2 >> (0x45 - 64)) & 1) == 1);
  auto other = (*vm)->vcpu(0).GetLapic();
  REQUIRE(other.ok());
  std::memcpy(&irr2, other->regs + 0x220, 4);
  CHECK(((irr2 >> (0x45 - 64)) & 1) == 0);

  int efd = eventfd(0, EFD_CLOEXEC);
  REQUIRE(efd >= 0);
  REQUIRE((*vm)->vm().RegisterIrqfd(efd, 5).ok());
  CHECK_FALSE((*vm)->vm().RegisterIrqfd(efd, 5).ok());  // same fd twice
  REQUIRE((*vm)->vm().UnregisterIrqfd(efd, 5).ok());
  CHECK((*vm)->vm().RegisterIrqfd(-1, 5).code() != absl::StatusCode::kOk);
  CHECK((*vm)->vm().IrqLine(4, true).ok());
  CHECK((*vm)->vm().IrqLine(4, false).ok());
  close(efd);
}

TEST_CASE("VM-wide state: IOAPIC, PIT and kvmclock round-trip into a new VM") {
  auto kvm = Kvm::Open();
  REQUIRE(kvm.ok());
  auto a = Vm::Create(**kvm);
  auto b = Vm::Create(**kvm);
  REQUIRE((a.ok() && b.ok()));
  for (auto* vm : {&*a, &*b}) {
    REQUIRE((*vm)->CreateIrqchip().ok());
    REQUIRE((*vm)->CreatePit2().ok());
  }
  auto ioapic = (*a)->GetIrqchip(KVM_IRQCHIP_IOAPIC);
  REQUIRE(ioapic.ok());
  ioapic->chip.ioapic.redirtbl[3].bits = 0x31;  // vector 0x31, unmasked
  REQUIRE((*a)->SetIrqchip(*ioapic).ok());
  auto saved = (*a)->GetIrqchip(KVM_IRQCHIP_IOAPIC);
  REQUIRE(saved.ok());
  CHECK(saved->chip.ioapic.redirtbl[3].bits == 0x31);
  REQUIRE((*b)->SetIrqchip(*saved).ok());
  CHECK((*b)->GetIrqchip(KVM_IRQCHIP_IOAPIC)->chip.ioapic.redirtbl[3].bits == 0x31);
  auto pit = (*a)->GetPit2();
  REQUIRE(pit.ok());
  REQUIRE((*b)->SetPit2(*pit).ok());
  CHECK((*a)->GetIrqchip(99).status().code() != absl::StatusCode::kOk);
  auto clock = (*a)->GetClock();
  REQUIRE(clock.ok());
  REQUIRE((*b)->SetClock(*clock).ok());
  auto clock_b = (*b)->GetClock();
  REQUIRE(clock_b.ok());
  CHECK(clock_b->clock >= clock->clock);  // kvmclock never goes back
}

}  // namespace
}  // namespace amalgam::vcpu
