#include "vmm/virtio_devices/test_vmm.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "vcpu/cpuid.h"
#include "vcpu/kvm.h"
#include "vcpu/regs.h"
#include "vcpu/runner.h"
#include "vmm/devices/debug_exit.h"
#include "vmm/devices/serial.h"
#include "vmm/devices/test_util.h"
#include "vmm/loader/pvh_boot.h"
#include "vmm/loader/pvh_elf.h"

namespace amalgam::vmm::virtio_devices {
namespace {

constexpr uint64_t kIdentityMapAddr = 0xfffbc000;
constexpr uint64_t kTssAddr = 0xfffbd000;

class NoIrq : public devices::IrqLine {
 public:
  void SetLevel(bool) override {}
};

// Records the first stop request and raises the runner's stop flag.
class Stopper : public StopRequester {
 public:
  explicit Stopper(std::shared_ptr<vcpu::StopFlag> flag) : flag_(std::move(flag)) {}
  void RequestStop(ExitOutcome outcome) override {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!outcome_) outcome_ = std::make_unique<ExitOutcome>(std::move(outcome));
    }
    flag_->Request();
  }
  std::unique_ptr<ExitOutcome> Take() {
    std::lock_guard<std::mutex> l(mu_);
    return std::move(outcome_);
  }

 private:
  std::shared_ptr<vcpu::StopFlag> flag_;
  std::mutex mu_;
  std::unique_ptr<ExitOutcome> outcome_;
};

}  // namespace

absl::StatusOr<BootResult> BootTestGuest(const std::string& guest_elf, const std::string& workload,
                                         VirtioOptions options, uint64_t memory_bytes,
                                         int watchdog_seconds) {
  auto sink = std::make_shared<devices::StringSink>();
  options.console_out = sink;
  auto kvm = vcpu::Kvm::Open();
  if (!kvm.ok()) return kvm.status();
  auto mem = memory::GuestMemory::Create(memory::GuestMemory::X86Layout(memory_bytes));
  if (!mem.ok()) return mem.status();
  auto image = loader::LoadPvhKernelFile(guest_elf, **mem);
  if (!image.ok()) return image.status();
  auto vm = vcpu::Vm::Create(**kvm);
  if (!vm.ok()) return vm.status();
  uint32_t slot = 0;
  for (const memory::GuestRegion& r : (*mem)->regions()) {
    vcpu::MemorySlot ms;
    ms.slot = slot++;
    ms.guest_phys_addr = r.start().value();
    ms.size = r.size();
    ms.host_address = r.host_address();
    if (absl::Status s = (*vm)->SetUserMemoryRegion(ms); !s.ok()) return s;
  }
  if (absl::Status s = (*vm)->SetTssAddr(kTssAddr); !s.ok()) return s;
  if (absl::Status s = (*vm)->SetIdentityMapAddr(kIdentityMapAddr); !s.ok()) return s;
  if (absl::Status s = (*vm)->CreateIrqchip(); !s.ok()) return s;
  if (absl::Status s = (*vm)->CreatePit2(); !s.ok()) return s;

  auto flag = std::make_shared<vcpu::StopFlag>();
  auto stopper = std::make_shared<Stopper>(flag);
  auto pio = std::make_shared<vcpu::Bus>();
  auto mmio = std::make_shared<vcpu::Bus>();
  if (absl::Status s =
          pio->Insert(std::make_shared<devices::Serial16550>(sink, std::make_shared<NoIrq>()),
                      devices::Serial16550::kCom1Port, devices::Serial16550::kRegisterCount);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = pio->Insert(std::make_shared<devices::DebugExit>(stopper),
                                   devices::DebugExit::kPort, devices::DebugExit::kSize);
      !s.ok()) {
    return s;
  }
  // Declared after the VM and the buses it uses, so it is destroyed before them.
  auto virtio = VirtioDevices::Create(options);
  if (!virtio.ok()) return virtio.status();
  const std::string cmdline = absl::StrCat(workload, " ", (*virtio)->KernelCmdline());
  auto start_info = loader::WritePvhBootInfo(**mem, cmdline);
  if (!start_info.ok()) return start_info.status();
  if (absl::Status s = (*virtio)->Attach(mem->get(), vm->get(), mmio.get()); !s.ok()) return s;

  auto supported = (*kvm)->GetSupportedCpuid();
  if (!supported.ok()) return supported.status();
  auto vcpu = (*vm)->CreateVcpu(0);
  if (!vcpu.ok()) return vcpu.status();
  vcpu::CpuidConfig cc;
  cc.apic_id = 0;
  cc.num_vcpus = 1;
  if (absl::Status s = (*vcpu)->SetCpuid2(vcpu::BuildVcpuCpuid(*supported, cc)); !s.ok()) {
    return s;
  }
  if (absl::Status s = vcpu::SetupPvhEntry(**vcpu, image->entry, *start_info); !s.ok()) return s;
  vcpu::VcpuRunner runner(vcpu->get(), pio, mmio, flag);

  // Watchdog: a wedged guest ends the run instead of the test timing out silently.
  std::mutex wd_mu;
  std::condition_variable wd_cv;
  bool done = false;
  std::thread watchdog([&] {
    std::unique_lock<std::mutex> l(wd_mu);
    if (!wd_cv.wait_for(l, std::chrono::seconds(watchdog_seconds), [&] { return done; })) {
      stopper->RequestStop(ExitOutcome::Of(ExitKind::kStopped, "watchdog: guest took too long"));
      runner.Kick();
    }
  });
  BootResult result;
  while (true) {
    absl::StatusOr<vcpu::VcpuExit> exit = runner.Run();
    if (!exit.ok()) {
      result.stop_reason = std::string(exit.status().message());
      break;
    }
    if (exit->reason == vcpu::VcpuExitReason::kKicked) continue;
    if (exit->reason != vcpu::VcpuExitReason::kStopRequested) {
      result.stop_reason = exit->ToString();
      // The test guest triple-faults on purpose right after debug-exit; the first reason wins.
    }
    break;
  }
  {
    std::lock_guard<std::mutex> l(wd_mu);
    done = true;
  }
  wd_cv.notify_all();
  watchdog.join();
  if (std::unique_ptr<ExitOutcome> o = stopper->Take()) {
    result.debug_exit = o->kind == ExitKind::kDebugExit;
    result.exit_value = o->debug_exit_value;
    if (!result.debug_exit) result.stop_reason = o->detail;
  }
  for (const AttachedDevice& d : (*virtio)->devices()) {
    result.device_errors += d.transport->device_errors();
  }
  result.serial = sink->str();
  return result;
}

}  // namespace amalgam::vmm::virtio_devices
