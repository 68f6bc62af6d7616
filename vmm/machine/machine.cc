#include "vmm/machine/machine.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "vcpu/cpu_template.h"
#include "vcpu/cpuid.h"
#include "vcpu/regs.h"
#include "vmm/devices/debug_exit.h"
#include "vmm/devices/i8042.h"
#include "vmm/devices/irq_line.h"
#include "vmm/devices/power_off.h"
#include "vmm/machine/kernel_boot.h"
#include "vmm/machine/vcpu_exit_outcome.h"

namespace amalgam::vmm::machine {
namespace {

// KVM needs three pages for the TSS and one for the identity map (VMX real mode), below 4 GiB and
// outside RAM. Just under the 4 GiB boundary, clear of the LAPIC/IOAPIC windows.
constexpr uint64_t kIdentityMapAddr = 0xfffbc000;
constexpr uint64_t kTssAddr = 0xfffbd000;

absl::Status Prefixed(const absl::Status& s, const std::string& prefix) {
  return absl::Status(s.code(), absl::StrCat(prefix, s.message()));
}

// The host CPU a thread of this process last ran on (field 39 of /proc/self/task/TID/stat), or
// -1 if unreadable. The command name (field 2) may hold spaces, so count after its ')'.
int32_t HostCpuOf(int32_t tid) {
  std::ifstream in(absl::StrCat("/proc/self/task/", tid, "/stat"));
  std::string line;
  if (!std::getline(in, line)) return -1;
  const size_t paren = line.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream fields(line.substr(paren + 1));
  std::string field;
  for (int i = 3; i <= 39 && (fields >> field); ++i) {
    if (i == 39) return static_cast<int32_t>(std::strtol(field.c_str(), nullptr, 10));
  }
  return -1;
}

}  // namespace

const char* MachineStateName(MachineState state) {
  switch (state) {
    case MachineState::kCreated:
      return "created";
    case MachineState::kRunning:
      return "running";
    case MachineState::kPaused:
      return "paused";
    case MachineState::kStopping:
      return "stopping";
    case MachineState::kStopped:
      return "stopped";
  }
  return "?";
}

// Devices ask for a stop through this; it forwards to the machine while the machine lives.
class Machine::StopSink : public StopRequester {
 public:
  explicit StopSink(Machine* machine) : machine_(machine) {}
  void RequestStop(ExitOutcome outcome) override { machine_->RequestStop(std::move(outcome)); }

 private:
  Machine* machine_;  // the machine owns the devices that hold this sink
};

// An ISA interrupt line on the in-kernel PIC/IOAPIC (KVM_IRQ_LINE).
class Machine::KvmIrqLine : public devices::IrqLine {
 public:
  KvmIrqLine(vcpu::Vm* vm, uint32_t gsi) : vm_(vm), gsi_(gsi) {}
  void SetLevel(bool asserted) override {
    // A failure here means the irqchip is gone (VM being torn down); the device cannot do better.
    (void)vm_->IrqLine(gsi_, asserted);
  }

 private:
  vcpu::Vm* vm_;
  uint32_t gsi_;
};

struct Machine::VcpuSlot {
  uint32_t index = 0;
  std::unique_ptr<vcpu::Vcpu> vcpu;
  std::unique_ptr<vcpu::VcpuRunner> runner;
  std::thread thread;
  std::atomic<int32_t> tid{0};  // the vCPU thread's host thread id, once it runs
  std::atomic<VcpuRunState> state{VcpuRunState::kNotStarted};
};

absl::StatusOr<std::unique_ptr<Machine>> Machine::Create(const MachineConfig& config) {
  std::unique_ptr<Machine> m(new Machine());
  absl::Status s = m->Build(config);
  if (!s.ok()) return s;
  return m;
}

absl::Status Machine::Build(const MachineConfig& config) {
  config_ = config;
  if (config.vcpus == 0) return absl::InvalidArgumentError("--vcpus must be at least 1");
  if (config.memory_bytes == 0) {
    return absl::InvalidArgumentError("--memory must be larger than 0 (e.g. 256M)");
  }

  absl::StatusOr<std::unique_ptr<vcpu::Kvm>> kvm = vcpu::Kvm::Open(config.kvm_device);
  if (!kvm.ok()) return kvm.status();
  kvm_ = std::move(*kvm);
  if (absl::Status caps = kvm_->CheckRequiredCapabilities(); !caps.ok()) return caps;
  const int max_vcpus = kvm_->MaxVcpus();
  if (config.vcpus > static_cast<uint32_t>(max_vcpus)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--vcpus %u is more than KVM allows on this host (KVM_CAP_MAX_VCPUS = %d)",
                        config.vcpus, max_vcpus));
  }

  absl::StatusOr<std::unique_ptr<memory::GuestMemory>> mem =
      memory::GuestMemory::Create(memory::GuestMemory::X86Layout(config.memory_bytes),
                                  memory::GuestMemory::Options{config.memory_backing});
  if (!mem.ok()) {
    return Prefixed(mem.status(), absl::StrFormat("--memory %u MiB: cannot map guest RAM: ",
                                                  config.memory_bytes >> 20));
  }
  memory_ = std::move(*mem);

  // Kernel and boot data first: a bad image is the likeliest user error, report it before
  // touching KVM state.
  BootInputs inputs;
  inputs.kernel_path = config.kernel_path;
  inputs.initrd_path = config.initrd_path;
  inputs.cmdline = config.cmdline;
  inputs.vcpus = config.vcpus;
  inputs.virtio_mmio = config.virtio_mmio;
  inputs.power_off_port = devices::PowerOff::kPort;
  absl::StatusOr<BootPlan> plan = LoadBoot(*memory_, inputs);
  if (!plan.ok()) return plan.status();
  entry_ = static_cast<uint32_t>(plan->entry);
  linux_boot_protocol_ = plan->protocol == BootProtocol::kLinux64;
  rsdp_address_ = plan->rsdp;

  absl::StatusOr<std::unique_ptr<vcpu::Vm>> vm = vcpu::Vm::Create(*kvm_);
  if (!vm.ok()) return vm.status();
  vm_ = std::move(*vm);
  uint32_t slot = 0;
  for (const memory::GuestRegion& r : memory_->regions()) {
    vcpu::MemorySlot ms;
    ms.slot = slot++;
    ms.guest_phys_addr = r.start().value();
    ms.size = r.size();
    ms.host_address = r.host_address();
    if (absl::Status st = vm_->SetUserMemoryRegion(ms); !st.ok()) return st;
  }
  if (absl::Status st = vm_->SetTssAddr(kTssAddr); !st.ok()) return st;
  if (absl::Status st = vm_->SetIdentityMapAddr(kIdentityMapAddr); !st.ok()) return st;
  if (absl::Status st = vm_->CreateIrqchip(); !st.ok()) return st;
  if (absl::Status st = vm_->CreatePit2(); !st.ok()) return st;

  // Devices.
  pio_bus_ = std::make_shared<vcpu::Bus>();
  mmio_bus_ = std::make_shared<vcpu::Bus>();
  stop_flag_ = std::make_shared<vcpu::StopFlag>();
  stop_sink_ = std::make_shared<StopSink>(this);
  serial_ = std::make_shared<devices::Serial16550>(
      config.serial_out, std::make_shared<KvmIrqLine>(vm_.get(), devices::Serial16550::kCom1Irq));
  if (absl::Status st = pio_bus_->Insert(serial_, devices::Serial16550::kCom1Port,
                                         devices::Serial16550::kRegisterCount);
      !st.ok()) {
    return st;
  }
  if (absl::Status st = pio_bus_->Insert(std::make_shared<devices::I8042>(stop_sink_),
                                         devices::I8042::kBasePort, devices::I8042::kPortSpan);
      !st.ok()) {
    return st;
  }
  if (absl::Status st = pio_bus_->Insert(std::make_shared<devices::DebugExit>(stop_sink_),
                                         devices::DebugExit::kPort, devices::DebugExit::kSize);
      !st.ok()) {
    return st;
  }
  // The FADT's sleep control register: the guest's ACPI power-off (S5).
  if (absl::Status st = pio_bus_->Insert(std::make_shared<devices::PowerOff>(stop_sink_),
                                         devices::PowerOff::kPort, devices::PowerOff::kSize);
      !st.ok()) {
    return st;
  }

  // vCPUs: each gets CPUID with its own APIC ID. Only the BSP gets boot registers; with the
  // in-kernel irqchip the APs start in wait-for-SIPI and the guest wakes them.
  std::optional<vcpu::CpuTemplateSpec> cpu_template;
  if (!config.cpu_template.empty()) {
    absl::StatusOr<vcpu::CpuTemplateSpec> spec = vcpu::FindCpuTemplate(config.cpu_template);
    if (!spec.ok()) return Prefixed(spec.status(), "--cpu-template: ");
    cpu_template = std::move(*spec);
  }
  absl::StatusOr<vcpu::CpuidEntries> supported = kvm_->GetSupportedCpuid();
  if (!supported.ok()) return supported.status();
  memory::GuestMemory* memory = memory_.get();
  for (uint32_t i = 0; i < config.vcpus; ++i) {
    auto slot_ptr = std::make_unique<VcpuSlot>();
    slot_ptr->index = i;
    absl::StatusOr<std::unique_ptr<vcpu::Vcpu>> v = vm_->CreateVcpu(i);
    if (!v.ok()) return v.status();
    slot_ptr->vcpu = std::move(*v);
    vcpu::CpuidConfig cc;
    cc.apic_id = i;
    cc.num_vcpus = config.vcpus;
    if (cpu_template.has_value()) {
      absl::StatusOr<vcpu::CpuidEntries> set =
          vcpu::SetupVcpuCpu(*vm_, *slot_ptr->vcpu, *supported, cc, *cpu_template);
      if (!set.ok()) return Prefixed(set.status(), "--cpu-template: ");
    } else if (absl::Status st = slot_ptr->vcpu->SetCpuid2(vcpu::BuildVcpuCpuid(*supported, cc));
               !st.ok()) {
      return st;
    }
    if (i == 0) {
      if (absl::Status st = SetupBootVcpu(*slot_ptr->vcpu, *memory_, *plan); !st.ok()) {
        return st;
      }
    }
    slot_ptr->runner =
        std::make_unique<vcpu::VcpuRunner>(slot_ptr->vcpu.get(), pio_bus_, mmio_bus_, stop_flag_);
    slot_ptr->runner->set_guest_reader([memory](uint64_t gpa, absl::Span<uint8_t> out) {
      return memory->Read(memory::GuestAddress(gpa), out).ok();
    });
    slots_.push_back(std::move(slot_ptr));
  }
  return absl::OkStatus();
}

Machine::~Machine() {
  Stop("machine destroyed");
  for (auto& slot : slots_) {
    if (slot->thread.joinable()) slot->thread.join();
  }
}

absl::Status Machine::Start() {
  absl::MutexLock lifecycle(&lifecycle_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (state_ != MachineState::kCreated) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot start a VM that is ", MachineStateName(state_)));
    }
    state_ = MachineState::kRunning;
    started_ = true;
    live_threads_ = static_cast<uint32_t>(slots_.size());
  }
  for (auto& slot : slots_) {
    VcpuSlot* s = slot.get();
    s->state = VcpuRunState::kRunning;
    s->thread = std::thread([this, s] { VcpuLoop(s); });
  }
  return absl::OkStatus();
}

absl::Status Machine::Pause() {
  absl::MutexLock lifecycle(&lifecycle_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (state_ != MachineState::kRunning) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot pause a VM that is ", MachineStateName(state_)));
    }
    pause_requested_ = true;
  }
  KickAll();
  absl::MutexLock lock(&mu_);
  auto settled = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return parked_ == live_threads_ || outcome_.has_value();
  };
  mu_.Await(absl::Condition(&settled));
  if (outcome_.has_value()) {
    pause_requested_ = false;
    return absl::AbortedError(absl::StrCat("the VM stopped while pausing: ", outcome_->detail));
  }
  state_ = MachineState::kPaused;
  return absl::OkStatus();
}

absl::Status Machine::Resume() {
  absl::MutexLock lifecycle(&lifecycle_mu_);
  absl::MutexLock lock(&mu_);
  if (state_ != MachineState::kPaused) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot resume a VM that is ", MachineStateName(state_)));
  }
  pause_requested_ = false;
  state_ = MachineState::kRunning;
  return absl::OkStatus();
}

void Machine::Stop(const std::string& reason) {
  RequestStop(ExitOutcome::Of(ExitKind::kStopped, reason));
}

void Machine::RequestStop(ExitOutcome outcome) {
  {
    absl::MutexLock lock(&mu_);
    if (!outcome_.has_value()) outcome_ = std::move(outcome);
    if (state_ != MachineState::kStopped) {
      state_ = (started_ && live_threads_ > 0) ? MachineState::kStopping : MachineState::kStopped;
    }
  }
  // The flag makes every runner return before re-entering the guest (the caller may be a vCPU
  // thread in the middle of an I/O exit); the kicks pull out the ones inside KVM_RUN.
  if (stop_flag_ != nullptr) stop_flag_->Request();
  KickAll();
}

void Machine::KickAll() {
  for (auto& slot : slots_) slot->runner->Kick();
}

bool Machine::AllThreadsDone() const {
  return outcome_.has_value() && (!started_ || live_threads_ == 0);
}

ExitOutcome Machine::Wait() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(this, &Machine::AllThreadsDone));
  return *outcome_;
}

std::optional<ExitOutcome> Machine::WaitFor(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  if (!mu_.AwaitWithTimeout(absl::Condition(this, &Machine::AllThreadsDone), timeout)) {
    return std::nullopt;
  }
  return *outcome_;
}

MachineInfo Machine::Info() const {
  MachineInfo info;
  info.vcpus = config_.vcpus;
  info.memory_bytes = config_.memory_bytes;
  info.kernel_entry = entry_;
  info.linux_boot_protocol = linux_boot_protocol_;
  info.rsdp_address = rsdp_address_;
  for (const auto& slot : slots_) {
    // Live: the runner's counters are atomics its vCPU thread bumps on every exit.
    const vcpu::RunnerStats st = slot->runner->stats();
    VcpuInfo v;
    v.index = slot->index;
    v.state = slot->state.load();
    v.exits = st.io_exits + st.mmio_exits + st.interrupted;
    v.io_exits = st.io_exits;
    v.mmio_exits = st.mmio_exits;
    v.unclaimed_accesses = st.unclaimed_accesses;
    v.host_tid = slot->tid.load();
    if (v.host_tid != 0 && v.state != VcpuRunState::kExited) v.host_cpu = HostCpuOf(v.host_tid);
    info.vcpu_info.push_back(v);
  }
  absl::MutexLock lock(&mu_);
  info.state = state_;
  info.outcome = outcome_;
  return info;
}

void Machine::VcpuLoop(VcpuSlot* slot) {
  slot->tid.store(static_cast<int32_t>(syscall(SYS_gettid)));
  vcpu::VcpuRunner& runner = *slot->runner;
  while (true) {
    absl::StatusOr<vcpu::VcpuExit> exit = runner.Run();
    if (!exit.ok()) {
      RequestStop(ExitOutcome::Of(
          ExitKind::kVmmError,
          absl::StrFormat("vcpu %u: KVM_RUN failed: %s", slot->index, exit.status().message())));
      break;
    }
    if (std::optional<ExitOutcome> end = OutcomeForVcpuExit(slot->index, *exit); end.has_value()) {
      RequestStop(std::move(*end));
      break;
    }
    if (stop_flag_->requested()) break;
    // A kick: park here while a pause is requested.
    absl::MutexLock lock(&mu_);
    if (outcome_.has_value()) break;
    if (pause_requested_) {
      ++parked_;
      slot->state = VcpuRunState::kPaused;
      auto released = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !pause_requested_ || outcome_.has_value();
      };
      mu_.Await(absl::Condition(&released));
      --parked_;
      slot->state = VcpuRunState::kRunning;
      if (outcome_.has_value()) break;
    }
  }
  slot->state = VcpuRunState::kExited;
  absl::MutexLock lock(&mu_);
  if (--live_threads_ == 0) state_ = MachineState::kStopped;
}

}  // namespace amalgam::vmm::machine
