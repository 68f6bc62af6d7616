// amalgam: boot a PVH ELF image or a bzImage in a KVM microVM. Thin glue over vmm/config and
// vmm/machine; `amalgam --help` documents the flags and exit codes.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "vmm/api/control_plane.h"
#include "vmm/config/vm_config.h"
#include "vmm/devices/byte_sink.h"
#include "vmm/devices/input_pump.h"
#include "vmm/exit_outcome.h"
#include "vmm/machine/machine.h"
#include "vmm/node/cluster_flags.h"
#include "vmm/node/cluster_node.h"
#include "vmm/virtio_devices/device_machine.h"

namespace {

using amalgam::vmm::ExitKind;
using amalgam::vmm::ExitOutcome;

int Fail(int code, const absl::Status& s) {
  std::fprintf(stderr, "amalgam: %.*s\n", static_cast<int>(s.message().size()), s.message().data());
  return code;
}

// `amalgam --api-socket PATH`: the VM is created, started and stopped through the gRPC API
// (vmm/api); SIGINT/SIGTERM stop it. Exit status as in direct mode.
int RunControlPlane(const amalgam::vmm::config::VmConfig& cfg) {
  namespace api = amalgam::vmm::api;
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  api::ControlPlaneOptions options;
  options.server.unix_socket = cfg.api_socket;
  options.server.metrics_address = cfg.metrics_address;
  options.server.tcp_address = cfg.api_tcp;
  options.server.tls_cert_file = cfg.tls_cert;
  options.server.tls_key_file = cfg.tls_key;
  options.server.tls_client_ca_file = cfg.tls_client_ca;
  options.config_file = cfg.config_file;
  absl::StatusOr<std::unique_ptr<api::ControlPlane>> cp = api::ControlPlane::Start(options);
  if (!cp.ok()) return Fail(amalgam::vmm::kExitUsage, cp.status());
  std::fprintf(stderr, "amalgam: control API on %s%s%s\n", cfg.api_socket.c_str(),
               cfg.api_socket.empty() || cfg.api_tcp.empty() ? "" : " and ",
               cfg.api_tcp.empty() ? "" : ("tcp " + cfg.api_tcp + " (TLS)").c_str());

  api::ControlPlane* plane = cp->get();
  std::atomic<bool> done{false};
  std::thread signal_thread([&stop_signals, &done, plane] {
    while (true) {
      int sig = 0;
      if (sigwait(&stop_signals, &sig) != 0) continue;
      if (done.load()) return;
      plane->Stop(absl::StrCat("received signal ", sig == SIGINT ? "SIGINT" : "SIGTERM"));
    }
  });
  ExitOutcome outcome = plane->WaitForVmExit();
  done.store(true);
  pthread_kill(signal_thread.native_handle(), SIGTERM);
  signal_thread.join();
  if (outcome.kind == ExitKind::kStopped) {
    std::fprintf(stderr, "amalgam: stopped: %s\n", outcome.detail.c_str());
  } else if (outcome.kind != ExitKind::kDebugExit) {
    std::fprintf(stderr, "amalgam: %s\n", outcome.detail.c_str());
  }
  return amalgam::vmm::ExitStatusFor(outcome);
}

int Run(int argc, char** argv) {
  namespace config = amalgam::vmm::config;
  namespace machine = amalgam::vmm::machine;
  namespace devices = amalgam::vmm::devices;

  // A closed stdout must drop console output, not kill the VMM; reading the terminal from the
  // background must end the input, not stop the process.
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGTTIN, SIG_IGN);

  // Cluster flags (vmm/node) first: a memory node (--node-id N, N != 0) runs no guest.
  namespace node = amalgam::vmm::node;
  std::vector<std::string> args(argv + 1, argv + argc);
  absl::StatusOr<node::ClusterFlags> cluster = node::ExtractClusterFlags(&args);
  bool help = false;
  absl::StatusOr<config::VmConfig> cfg = config::ParseArgs(args, &help);
  if (help) {
    std::fputs(config::UsageText().c_str(), stdout);
    std::fputs(node::ClusterUsageText().c_str(), stdout);
    return 0;
  }
  if (!cluster.ok()) return Fail(amalgam::vmm::kExitUsage, cluster.status());
  if (cluster->enabled && cluster->node_id != 0) return node::RunMemoryNode(*cluster, args);
  if (!cfg.ok()) return Fail(amalgam::vmm::kExitUsage, cfg.status());
  config::HostLimits limits;
  limits.max_memory_bytes = config::HostMemoryLimit().value_or(0);
  if (absl::Status s = config::ValidateConfig(*cfg, limits); !s.ok()) {
    return Fail(amalgam::vmm::kExitUsage, s);
  }

  if (cluster->enabled && (cfg->api_mode() || !cfg->disks.empty() || !cfg->nets.empty() ||
                           cfg->rng || cfg->virtio_console)) {
    return Fail(amalgam::vmm::kExitUsage,
                absl::InvalidArgumentError("--node-id: the control API and virtio devices are "
                                           "not supported in cluster mode yet"));
  }
  if (cfg->api_mode()) return RunControlPlane(*cfg);

  std::shared_ptr<devices::ByteSink> sink;
  if (cfg->serial_out.empty()) {
    sink = std::make_shared<devices::FdSink>(1, /*owned=*/false);
  } else {
    absl::StatusOr<std::unique_ptr<devices::FdSink>> file =
        devices::FdSink::OpenFile(cfg->serial_out);
    if (!file.ok()) return Fail(amalgam::vmm::kExitUsage, file.status());
    sink = std::move(*file);
  }

  // SIGINT/SIGTERM stop the VM; they are handled on one thread (sigwait), so block them before
  // any vCPU thread exists (threads inherit the mask).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  // virtio devices: backends open now (errors are the user's), attached after the VM exists.
  namespace vdev = amalgam::vmm::virtio_devices;
  vdev::VirtioOptions vopts;
  for (const std::string& d : cfg->disks) {
    absl::StatusOr<vdev::DiskSpec> disk = vdev::ParseDiskFlag(d);
    if (!disk.ok()) return Fail(amalgam::vmm::kExitUsage, disk.status());
    vopts.disks.push_back(*disk);
  }
  for (const std::string& n : cfg->nets) {
    absl::StatusOr<vdev::NetSpec> net = vdev::ParseNetFlag(n);
    if (!net.ok()) return Fail(amalgam::vmm::kExitUsage, net.status());
    vopts.nets.push_back(*net);
  }
  vopts.rng = cfg->rng;
  vopts.console = cfg->virtio_console;
  vopts.console_out = sink;

  machine::MachineConfig mc;
  mc.kernel_path = cfg->kernel;
  mc.initrd_path = cfg->initrd;
  mc.cpu_template = cfg->cpu_template;
  mc.cmdline = cfg->cmdline;
  mc.memory_bytes = cfg->memory_bytes;
  // Distributed memory needs userfaultfd on the shared memfd; a single node gets THP-backed RAM
  // (first touch ~8x faster here, memory/README.md "Backing").
  mc.memory_backing = cluster->enabled ? amalgam::memory::GuestMemory::Backing::kSharedMemfd
                                       : amalgam::memory::GuestMemory::Backing::kPrivateHugePages;
  mc.vcpus = cfg->vcpus;
  mc.kvm_device = cfg->kvm_device;
  mc.serial_out = sink;
  // The same builder the control API uses (vmm/virtio_devices/device_machine.h).
  absl::StatusOr<std::unique_ptr<vdev::DeviceMachine>> vm = vdev::DeviceMachine::Create(mc, vopts);
  if (!vm.ok()) {
    return Fail(
        vdev::IsAttachFailure(vm.status()) ? amalgam::vmm::kExitVmmError : amalgam::vmm::kExitUsage,
        vm.status());
  }

  machine::Machine* m = &(*vm)->machine();
  // stdin feeds the guest's COM1 receiver (ends quietly at EOF, e.g. </dev/null).
  absl::StatusOr<std::unique_ptr<devices::InputPump>> input =
      devices::InputPump::Start(0, &m->serial());
  if (!input.ok()) return Fail(amalgam::vmm::kExitVmmError, input.status());

  // Cluster node 0: peers connected, the loaded image moved to its homes, RAM on userfaultfd.
  std::unique_ptr<node::ClusterNode> cluster_node;
  if (cluster->enabled) {
    absl::StatusOr<std::unique_ptr<node::ClusterNode>> joined =
        node::ClusterNode::Join(*cluster, cfg->memory_bytes, &m->memory());
    if (!joined.ok()) return Fail(amalgam::vmm::kExitUsage, joined.status());
    cluster_node = std::move(*joined);
    // A lost peer holds pages the guest needs: stop the guest and say which node (status 8).
    cluster_node->OnPeerLost([m](const std::string& why) { m->Stop("lost cluster " + why); });
  }

  std::atomic<bool> done{false};
  std::thread signal_thread([&stop_signals, &done, m] {
    while (true) {
      int sig = 0;
      if (sigwait(&stop_signals, &sig) != 0) continue;
      if (done.load()) return;
      m->Stop(absl::StrCat("received signal ", sig == SIGINT ? "SIGINT" : "SIGTERM"));
    }
  });

  ExitOutcome outcome;
  if (absl::Status s = m->Start(); !s.ok()) {
    outcome = ExitOutcome::Of(ExitKind::kVmmError, std::string(s.message()));
    m->Stop("start failed");
    m->Wait();
  } else {
    outcome = m->Wait();
  }
  if (cluster_node) {
    std::optional<std::string> lost = cluster_node->lost_reason();
    if (lost.has_value() && outcome.kind == ExitKind::kStopped) {
      outcome = ExitOutcome::Of(ExitKind::kVmmError, "lost cluster " + *lost);
    }
    cluster_node->Finish(outcome.detail);  // every vCPU has stopped
  }
  done.store(true);
  pthread_kill(signal_thread.native_handle(), SIGTERM);
  signal_thread.join();
  vm->reset();  // takes the devices off the VM and its bus before the Machine goes

  // A debug-exit is the guest's own verdict and ends quietly; anything else says why on stderr.
  if (outcome.kind == ExitKind::kStopped) {
    std::fprintf(stderr, "amalgam: stopped: %s\n", outcome.detail.c_str());
  } else if (outcome.kind != ExitKind::kDebugExit) {
    std::fprintf(stderr, "amalgam: %s\n", outcome.detail.c_str());
  }
  return amalgam::vmm::ExitStatusFor(outcome);
}

}  // namespace

int main(int argc, char** argv) {
#ifdef NDEBUG
  // Debian's Abseil checks lock order on every Mutex acquire (a debug aid: 55-95 ns per lock
  // here, and a remote fault's p99 grew 20x with it). Optimized builds run without it; tests
  // (fastbuild, asan) keep it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
  return Run(argc, argv);
}
