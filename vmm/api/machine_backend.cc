#include "vmm/api/machine_backend.h"

#include <sys/mman.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "vmm/api/controller.h"
#include "vmm/api/library_metrics.h"
#include "vmm/config/vm_config.h"
#include "vmm/devices/byte_sink.h"

namespace amalgam::vmm::api {
namespace {

absl::Status NotYet(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("config field \"", field, "\": ", what,
                   " is not supported by this amalgam build yet; remove it from the config"));
}

v1::VcpuRunState ToRunState(machine::VcpuRunState s) {
  switch (s) {
    case machine::VcpuRunState::kNotStarted:
      return v1::VCPU_RUN_STATE_CREATED;
    case machine::VcpuRunState::kRunning:
      return v1::VCPU_RUN_STATE_RUNNING;
    case machine::VcpuRunState::kPaused:
      return v1::VCPU_RUN_STATE_PAUSED;
    case machine::VcpuRunState::kExited:
      return v1::VCPU_RUN_STATE_STOPPED;
  }
  return v1::VCPU_RUN_STATE_UNSPECIFIED;
}

// Guest pages present in host memory (touched at least once), counted with mincore(2).
uint64_t ResidentPages(const memory::GuestMemory& mem) {
  const long page = sysconf(_SC_PAGESIZE);
  uint64_t resident = 0;
  std::vector<unsigned char> vec;
  for (const memory::GuestRegion& r : mem.regions()) {
    const uint64_t pages = (r.size() + page - 1) / page;
    vec.assign(pages, 0);
    if (mincore(r.host_address(), r.size(), vec.data()) != 0) continue;
    for (unsigned char v : vec) resident += v & 1;
  }
  return resident;
}

}  // namespace

absl::StatusOr<std::shared_ptr<devices::ByteSink>> OpenOutput(const std::string& field,
                                                              const std::string& path) {
  absl::StatusOr<std::unique_ptr<devices::FdSink>> sink = devices::FdSink::OpenFile(path);
  if (!sink.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config field \"", field, "\": ", sink.status().message()));
  }
  return std::shared_ptr<devices::ByteSink>(*std::move(sink));
}

absl::StatusOr<MachinePlan> ToMachinePlan(const v1::VmConfig& config,
                                          std::shared_ptr<devices::ByteSink> default_output) {
  if (config.has_cluster() && config.cluster().nodes_size() > 1) {
    return NotYet("cluster.nodes", "more than one node");
  }
  MachinePlan plan;
  machine::MachineConfig& m = plan.machine;
  m.kernel_path = config.boot().kernel();
  m.initrd_path = config.boot().initrd();
  m.cmdline = config.boot().cmdline();
  m.cpu_template = config.cpu_template();
  m.memory_bytes = config.memory_mib() << 20;
  m.vcpus = config.vcpus();
  // One node (the only kind the API builds so far): THP-backed RAM, as the flag path does.
  m.memory_backing = memory::GuestMemory::Backing::kPrivateHugePages;
  m.serial_out = std::move(default_output);
  if (!config.serial_output().empty()) {
    absl::StatusOr<std::shared_ptr<devices::ByteSink>> sink =
        OpenOutput("serial_output", config.serial_output());
    if (!sink.ok()) return sink.status();
    m.serial_out = *std::move(sink);
  }
  virtio_devices::VirtioOptions& v = plan.devices;
  v.console_out = m.serial_out;
  for (int i = 0; i < config.devices_size(); ++i) {
    const v1::DeviceConfig& d = config.devices(i);
    const std::string field = absl::StrCat("devices[", i, "]");
    switch (d.kind_case()) {
      case v1::DeviceConfig::kBlock:
        v.disks.push_back({d.block().path(), d.block().read_only(), d.id()});
        break;
      case v1::DeviceConfig::kNet: {
        // The same parser as `--net tap=NAME[,mac=M]` (ValidateVmConfig checked the pieces).
        std::string flag = absl::StrCat("tap=", d.net().tap());
        if (!d.net().mac().empty()) absl::StrAppend(&flag, ",mac=", d.net().mac());
        absl::StatusOr<virtio_devices::NetSpec> net = virtio_devices::ParseNetFlag(flag);
        if (!net.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat("config field \"", field, ".net\": ", net.status().message()));
        }
        net->id = d.id();
        v.nets.push_back(*std::move(net));
        break;
      }
      case v1::DeviceConfig::kRng:
        if (v.rng) return NotYet(field + ".rng", "a second rng device");
        v.rng = true;
        v.rng_id = d.id();
        break;
      case v1::DeviceConfig::kConsole:
        if (v.console) return NotYet(field + ".console", "a second virtio console");
        v.console = true;
        v.console_id = d.id();
        if (!d.console().output().empty()) {
          absl::StatusOr<std::shared_ptr<devices::ByteSink>> sink =
              OpenOutput(field + ".console.output", d.console().output());
          if (!sink.ok()) return sink.status();
          v.console_out = *std::move(sink);
        }
        break;
      case v1::DeviceConfig::KIND_NOT_SET:
        return absl::InvalidArgumentError(absl::StrCat(
            "config field \"", field, "\" has no kind: add one of block, net, console, rng"));
    }
  }
  return plan;
}

v1::VmExit ToVmExit(const ExitOutcome& outcome) {
  v1::VmExit exit;
  exit.set_detail(outcome.detail);
  switch (outcome.kind) {
    case ExitKind::kDebugExit:
      exit.set_reason(v1::VmExit::REASON_GUEST_SHUTDOWN);
      exit.set_exit_code(static_cast<int32_t>(outcome.debug_exit_value));
      if (exit.detail().empty()) {
        exit.set_detail(absl::StrCat("debug-exit ", outcome.debug_exit_value));
      }
      break;
    case ExitKind::kReset:
    case ExitKind::kPowerOff:
      exit.set_reason(v1::VmExit::REASON_GUEST_SHUTDOWN);
      break;
    case ExitKind::kStopped:
      exit.set_reason(v1::VmExit::REASON_USER_SHUTDOWN);
      break;
    case ExitKind::kTripleFault:
    case ExitKind::kInternalError:
    case ExitKind::kVmmError:
      exit.set_reason(v1::VmExit::REASON_ERROR);
      if (exit.detail().empty()) exit.set_detail(ExitKindName(outcome.kind));
      break;
  }
  return exit;
}

MachineBackend::MachineBackend()
    : MachineBackend(std::make_shared<devices::FdSink>(1, /*owned=*/false)) {}

MachineBackend::MachineBackend(std::shared_ptr<devices::ByteSink> default_output)
    : default_output_(std::move(default_output)) {}

MachineBackend::~MachineBackend() {
  // ~DeviceMachine stops, joins and detaches; kept out of line (incomplete types).
}

std::shared_ptr<virtio_devices::DeviceMachine> MachineBackend::GetBuilt() {
  absl::MutexLock lock(&mu_);
  return built_;
}

std::shared_ptr<machine::Machine> MachineBackend::Get() {
  std::shared_ptr<virtio_devices::DeviceMachine> built = GetBuilt();
  if (built == nullptr) return nullptr;
  // Aliasing: the Machine lives as long as anyone holds its DeviceMachine.
  return std::shared_ptr<machine::Machine>(built, &built->machine());
}

machine::Machine* MachineBackend::machine() { return Get().get(); }

absl::Status MachineBackend::Create(const v1::VmConfig& config) {
  // RAM + swap bounds what could ever back the guest; more is a typo, not a plan.
  if (absl::StatusOr<uint64_t> limit = config::HostMemoryLimit();
      limit.ok() && *limit > 0 && (config.memory_mib() << 20) > *limit) {
    return absl::InvalidArgumentError(absl::StrCat("config field \"memory_mib\" is ",
                                                   config.memory_mib(), " but this host has only ",
                                                   *limit >> 20, " MiB of RAM and swap: lower it"));
  }
  absl::StatusOr<MachinePlan> plan = ToMachinePlan(config, default_output_);
  if (!plan.ok()) return plan.status();
  absl::StatusOr<std::unique_ptr<virtio_devices::DeviceMachine>> built =
      virtio_devices::DeviceMachine::Create(plan->machine, plan->devices);
  if (!built.ok()) {
    return absl::Status(built.status().code(),
                        absl::StrCat("cannot build the VM: ", built.status().message()));
  }
  absl::MutexLock lock(&mu_);
  built_ = *std::move(built);
  serial_output_ = config.serial_output();
  return absl::OkStatus();
}

absl::Status MachineBackend::Start() { return Get()->Start(); }
absl::Status MachineBackend::Pause() { return Get()->Pause(); }
absl::Status MachineBackend::Resume() { return Get()->Resume(); }

absl::Status MachineBackend::Shutdown() {
  std::shared_ptr<machine::Machine> m = Get();
  m->Stop("stopped by Lifecycle.Shutdown");
  m->Wait();  // Returns once every vCPU thread has ended.
  return absl::OkStatus();
}

std::optional<v1::VmExit> MachineBackend::WaitForExit(absl::Duration timeout) {
  std::shared_ptr<machine::Machine> m = Get();
  if (m == nullptr) return std::nullopt;
  std::optional<ExitOutcome> outcome = m->WaitFor(timeout);
  if (!outcome.has_value()) return std::nullopt;
  return ToVmExit(*outcome);
}

void MachineBackend::FillInfo(v1::VmInfo* info) {
  std::shared_ptr<virtio_devices::DeviceMachine> built = GetBuilt();
  if (built == nullptr) return;
  machine::Machine& m = built->machine();
  const machine::MachineInfo mi = m.Info();
  for (const machine::VcpuInfo& v : mi.vcpu_info) {
    v1::VcpuInfo* out = info->add_vcpus();
    out->set_index(v.index);
    out->set_node_id(0);  // Single node: every vCPU runs here.
    out->set_run_state(ToRunState(v.state));
    out->set_exits(v.exits);
    out->set_host_thread_id(v.host_tid);
    out->set_host_cpu(v.host_cpu);
  }
  v1::NodeMemoryInfo* mem = info->add_memory();
  mem->set_node_id(0);
  mem->set_home_bytes(mi.memory_bytes);
  mem->set_resident_pages(ResidentPages(m.memory()));
  std::string serial_out;
  {
    absl::MutexLock lock(&mu_);
    serial_out =
        serial_output_.empty() ? "output to amalgam's stdout" : "output to " + serial_output_;
  }
  auto add = [info](const std::string& id, const std::string& kind, const std::string& detail) {
    v1::DeviceInfo* d = info->add_devices();
    d->set_id(id);
    d->set_kind(kind);
    d->set_detail(detail);
  };
  add("com1", "serial-16550", "port 0x3f8, irq 4, " + serial_out);
  add("i8042", "i8042", "port 0x60/0x64 (reset only)");
  add("debug-exit", "isa-debug-exit", "port 0xf4");
  add("acpi-pm", "acpi-power-off", "port 0x600/0x601 (S5 powers off)");
  for (const virtio_devices::AttachedDevice& d : built->devices()) {
    add(d.id, "virtio-" + d.kind,
        absl::StrCat(d.detail, ", mmio 0x", absl::Hex(d.base), ", gsi ", d.gsi));
  }
}

void MachineBackend::AppendMetrics(std::vector<v1::Metric>* out) {
  std::shared_ptr<virtio_devices::DeviceMachine> built = GetBuilt();
  if (built == nullptr) return;
  machine::Machine& m = built->machine();
  const machine::MachineInfo mi = m.Info();
  MetricSamples samples;
  auto add = [&samples](const char* name, const char* library, const char* help, MetricKind kind,
                        MetricLabels labels, double value) {
    samples.push_back({name, library, help, kind, std::move(labels), value});
  };
  for (const machine::VcpuInfo& v : mi.vcpu_info) {
    const MetricLabels vcpu = {{"vcpu", std::to_string(v.index)}};
    add("amalgam_vcpu_exits_total", "vcpu", "KVM_RUN exits handled (I/O, MMIO, kicks); live",
        MetricKind::kCounter, vcpu, static_cast<double>(v.exits));
    add("amalgam_vcpu_io_exits_total", "vcpu", "port I/O exits", MetricKind::kCounter, vcpu,
        static_cast<double>(v.io_exits));
    add("amalgam_vcpu_mmio_exits_total", "vcpu", "MMIO exits", MetricKind::kCounter, vcpu,
        static_cast<double>(v.mmio_exits));
    add("amalgam_vcpu_unclaimed_accesses_total", "vcpu",
        "port I/O or MMIO accesses no device claimed", MetricKind::kCounter, vcpu,
        static_cast<double>(v.unclaimed_accesses));
    add("amalgam_vcpu_running", "vcpu", "1 while the vCPU thread runs the guest (not paused)",
        MetricKind::kGauge, vcpu, v.state == machine::VcpuRunState::kRunning ? 1 : 0);
  }
  add("amalgam_memory_guest_bytes", "memory", "Guest RAM size", MetricKind::kGauge, {},
      static_cast<double>(mi.memory_bytes));
  add("amalgam_memory_resident_pages", "memory", "Guest pages present in host memory",
      MetricKind::kGauge, {}, static_cast<double>(ResidentPages(m.memory())));
  add("amalgam_vmm_vcpus", "vmm", "vCPUs of the VM", MetricKind::kGauge, {},
      static_cast<double>(mi.vcpus));
  for (const virtio_devices::AttachedDevice& d : built->devices()) {
    AppendVirtioMetrics(*d.transport, d.id, d.kind, &samples);
  }
  for (const MetricSample& sample : samples) out->push_back(ToMetric(sample));
}

}  // namespace amalgam::vmm::api
