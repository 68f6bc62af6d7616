// Machine: one single-node amalgam microVM: KVM VM with in-kernel irqchip and PIT, guest RAM,
// the legacy devices (COM1, i8042, debug-exit, ACPI power-off), ACPI tables, a kernel (PVH ELF or
// bzImage, with an optional initrd) loaded with its boot data, and one thread per vCPU. Lifecycle:
// Create -> Start -> (Pause <-> Resume)* -> Stop/guest exit -> Wait. The control plane (vmm/api)
// wraps these calls; `amalgam` drives them directly. Ownership: owns KVM, the VM, memory, vCPUs,
// devices and threads; the destructor stops and joins. Thread-safety: every public method may be
// called from any thread (one internal mutex); Pause/Resume/Start are serialized against each
// other.
#ifndef AMALGAM_VMM_MACHINE_MACHINE_H_
#define AMALGAM_VMM_MACHINE_MACHINE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "memory/guest_memory.h"
#include "vcpu/bus.h"
#include "vcpu/kvm.h"
#include "vcpu/runner.h"
#include "vcpu/vcpu.h"
#include "vcpu/vm.h"
#include "vmm/acpi/tables.h"
#include "vmm/devices/byte_sink.h"
#include "vmm/devices/serial.h"
#include "vmm/exit_outcome.h"

namespace amalgam::vmm::machine {

struct MachineConfig {
  std::string kernel_path;  // PVH ELF (vmlinux, test guest) or bzImage, told apart by content
  std::string initrd_path;  // empty: no initrd
  std::string cmdline;
  std::string cpu_template;  // empty: none; else a vcpu/cpu_template.h name ("baseline", "host")
  uint64_t memory_bytes = 256ull << 20;
  // kSharedMemfd is what a cluster node's userfaultfd service needs (its seeding reads the memfd);
  // a single-node VM should ask for kPrivateHugePages: first touch of guest RAM 4-8x faster on a
  // PVM host (memory/README.md, "Backing").
  memory::GuestMemory::Backing memory_backing = memory::GuestMemory::Backing::kSharedMemfd;
  uint32_t vcpus = 1;
  std::string kvm_device = vcpu::Kvm::kDefaultPath;
  std::shared_ptr<devices::ByteSink> serial_out;  // null: the guest's serial output is dropped
  // virtio-mmio windows to list in the ACPI DSDT (the devices themselves are attached to
  // mmio_bus() between Create and Start).
  std::vector<acpi::MmioDevice> virtio_mmio;
};

enum class MachineState { kCreated, kRunning, kPaused, kStopping, kStopped };
const char* MachineStateName(MachineState state);

enum class VcpuRunState { kNotStarted, kRunning, kPaused, kExited };

struct VcpuInfo {
  uint32_t index = 0;
  VcpuRunState state = VcpuRunState::kNotStarted;
  // KVM_RUN exits handled so far (I/O + MMIO + interrupted runs), live while the guest runs.
  uint64_t exits = 0;
  uint64_t io_exits = 0;
  uint64_t mmio_exits = 0;
  uint64_t unclaimed_accesses = 0;  // PIO/MMIO no device claimed
  int32_t host_tid = 0;             // host thread running the vCPU (0 before Start)
  int32_t host_cpu = -1;            // host CPU that thread last ran on (-1: unknown / ended)
};

struct MachineInfo {
  MachineState state = MachineState::kCreated;
  uint32_t vcpus = 0;
  uint64_t memory_bytes = 0;
  uint32_t kernel_entry = 0;
  bool linux_boot_protocol = false;  // bzImage (64-bit boot protocol) rather than PVH
  uint64_t rsdp_address = 0;         // the ACPI RSDP in guest RAM
  std::vector<VcpuInfo> vcpu_info;
  std::optional<ExitOutcome> outcome;  // set once stopped (or stopping)
};

class Machine {
 public:
  // Builds everything and loads the kernel; no vCPU runs yet. Errors are one line the user can
  // act on (missing KVM device, bad kernel, too much memory, too many vCPUs).
  static absl::StatusOr<std::unique_ptr<Machine>> Create(const MachineConfig& config);
  ~Machine();
  Machine(const Machine&) = delete;
  Machine& operator=(const Machine&) = delete;

  // Starts one thread per vCPU. FAILED_PRECONDITION unless Created.
  absl::Status Start();
  // Kicks every vCPU out of KVM_RUN and returns once all are parked (none inside KVM_RUN).
  // FAILED_PRECONDITION unless Running. If the VM stops meanwhile, returns that as ABORTED.
  absl::Status Pause();
  absl::Status Resume();  // FAILED_PRECONDITION unless Paused
  // Asks the VM to stop with ExitKind::kStopped (the first stop reason wins); returns at once.
  // Works in every state, also before Start.
  void Stop(const std::string& reason);
  // Blocks until every vCPU thread has ended (or, if never started, until Stop), then returns
  // the outcome.
  ExitOutcome Wait();
  // Like Wait, but gives up after `timeout` (zero: just look).
  std::optional<ExitOutcome> WaitFor(absl::Duration timeout);
  MachineInfo Info() const;

  // For tests and embedders: guest memory and the serial port (e.g. to inject input).
  memory::GuestMemory& memory() { return *memory_; }
  devices::Serial16550& serial() { return *serial_; }
  // For device glue (virtio-mmio windows, irqfds): attach devices after Create, before Start.
  // The buses are thread-safe; the Vm lives as long as the Machine.
  vcpu::Vm& vm() { return *vm_; }
  vcpu::Bus& pio_bus() { return *pio_bus_; }
  vcpu::Bus& mmio_bus() { return *mmio_bus_; }

 private:
  class StopSink;
  class KvmIrqLine;
  struct VcpuSlot;

  Machine() = default;
  absl::Status Build(const MachineConfig& config);
  void RequestStop(ExitOutcome outcome);
  void VcpuLoop(VcpuSlot* slot);
  void KickAll();
  bool AllThreadsDone() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  MachineConfig config_;
  uint32_t entry_ = 0;
  bool linux_boot_protocol_ = false;
  uint64_t rsdp_address_ = 0;
  // Declaration order is destruction order in reverse: threads are joined in ~Machine, then
  // runners and vCPUs go before the VM, the VM before guest memory and the KVM fd.
  std::unique_ptr<vcpu::Kvm> kvm_;
  std::unique_ptr<memory::GuestMemory> memory_;
  std::unique_ptr<vcpu::Vm> vm_;
  std::shared_ptr<vcpu::Bus> pio_bus_;
  std::shared_ptr<vcpu::Bus> mmio_bus_;
  std::shared_ptr<vcpu::StopFlag> stop_flag_;
  std::shared_ptr<StopSink> stop_sink_;
  std::shared_ptr<devices::Serial16550> serial_;
  std::vector<std::unique_ptr<VcpuSlot>> slots_;

  mutable absl::Mutex mu_;
  MachineState state_ ABSL_GUARDED_BY(mu_) = MachineState::kCreated;
  std::optional<ExitOutcome> outcome_ ABSL_GUARDED_BY(mu_);
  bool pause_requested_ ABSL_GUARDED_BY(mu_) = false;
  uint32_t parked_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t live_threads_ ABSL_GUARDED_BY(mu_) = 0;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex lifecycle_mu_;  // serializes Start/Pause/Resume
};

}  // namespace amalgam::vmm::machine

#endif  // AMALGAM_VMM_MACHINE_MACHINE_H_
