#include "vmm/api/machine_backend.h"

#include <sys/mman.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
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

v1::Metric Sample(const char* name, const char* library, const char* help, v1::Metric::Kind kind,
                  double value) {
  v1::Metric m;
  m.set_name(name);
  m.set_library(library);
  m.set_help(help);
  m.set_kind(kind);
  m.set_value(value);
  return m;
}

}  // namespace

absl::StatusOr<machine::MachineConfig> ToMachineConfig(const v1::VmConfig& config) {
  if (!config.boot().initrd().empty()) return NotYet("boot.initrd", "an initrd");
  if (config.devices_size() > 0) return NotYet("devices", "virtio devices");
  if (!config.cpu_template().empty()) return NotYet("cpu_template", "a named CPU template");
  if (config.has_cluster() && config.cluster().nodes_size() > 1) {
    return NotYet("cluster.nodes", "more than one node");
  }
  machine::MachineConfig m;
  m.kernel_path = config.boot().kernel();
  m.cmdline = config.boot().cmdline();
  m.memory_bytes = config.memory_mib() << 20;
  m.vcpus = config.vcpus();
  if (!config.serial_output().empty()) {
    absl::StatusOr<std::unique_ptr<devices::FdSink>> sink =
        devices::FdSink::OpenFile(config.serial_output());
    if (!sink.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("config field \"serial_output\": ", sink.status().message()));
    }
    m.serial_out = *std::move(sink);
  }
  return m;
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

MachineBackend::~MachineBackend() {
  // ~Machine stops and joins; nothing else to do, but keep it out of line (incomplete types).
}

std::shared_ptr<machine::Machine> MachineBackend::Get() {
  absl::MutexLock lock(&mu_);
  return machine_;
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
  absl::StatusOr<machine::MachineConfig> mc = ToMachineConfig(config);
  if (!mc.ok()) return mc.status();
  absl::StatusOr<std::unique_ptr<machine::Machine>> m = machine::Machine::Create(*mc);
  if (!m.ok()) {
    return absl::Status(m.status().code(),
                        absl::StrCat("cannot build the VM: ", m.status().message()));
  }
  absl::MutexLock lock(&mu_);
  machine_ = *std::move(m);
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
  std::shared_ptr<machine::Machine> m = Get();
  if (m == nullptr) return;
  const machine::MachineInfo mi = m->Info();
  for (const machine::VcpuInfo& v : mi.vcpu_info) {
    v1::VcpuInfo* out = info->add_vcpus();
    out->set_index(v.index);
    out->set_node_id(0);  // Single node: every vCPU runs here.
    out->set_run_state(ToRunState(v.state));
    out->set_exits(v.exits);
  }
  v1::NodeMemoryInfo* mem = info->add_memory();
  mem->set_node_id(0);
  mem->set_home_bytes(mi.memory_bytes);
  mem->set_resident_pages(ResidentPages(m->memory()));
  std::string serial_out;
  {
    absl::MutexLock lock(&mu_);
    serial_out = serial_output_.empty() ? "output discarded" : "output to " + serial_output_;
  }
  for (auto [id, kind, detail] : {std::tuple<const char*, const char*, std::string>{
                                      "com1", "serial-16550", "port 0x3f8, " + serial_out},
                                  {"i8042", "i8042", "port 0x60/0x64 (reset only)"},
                                  {"debug-exit", "isa-debug-exit", "port 0xf4"}}) {
    v1::DeviceInfo* d = info->add_devices();
    d->set_id(id);
    d->set_kind(kind);
    d->set_detail(detail);
  }
}

void MachineBackend::AppendMetrics(std::vector<v1::Metric>* out) {
  std::shared_ptr<machine::Machine> m = Get();
  if (m == nullptr) return;
  const machine::MachineInfo mi = m->Info();
  for (const machine::VcpuInfo& v : mi.vcpu_info) {
    v1::Metric s =
        Sample("amalgam_vcpu_exits_total", "vcpu", "KVM_RUN exits handled (I/O, MMIO, kicks)",
               v1::Metric::KIND_COUNTER, static_cast<double>(v.exits));
    (*s.mutable_labels())["vcpu"] = std::to_string(v.index);
    out->push_back(std::move(s));
  }
  out->push_back(Sample("amalgam_memory_guest_bytes", "memory", "Guest RAM size",
                        v1::Metric::KIND_GAUGE, static_cast<double>(mi.memory_bytes)));
  out->push_back(Sample("amalgam_memory_resident_pages", "memory",
                        "Guest pages present in host memory", v1::Metric::KIND_GAUGE,
                        static_cast<double>(ResidentPages(m->memory()))));
  out->push_back(Sample("amalgam_vmm_vcpus", "vmm", "vCPUs of the VM", v1::Metric::KIND_GAUGE,
                        static_cast<double>(mi.vcpus)));
}

}  // namespace amalgam::vmm::api
