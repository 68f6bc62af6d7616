// VcpuRunner: the KVM_RUN loop of one vCPU on the calling thread, with exit dispatch to a port-I/O
// Bus and an MMIO Bus, a race-free Kick() from any thread, and a VM-wide stop flag that devices
// can raise (e.g. a debug-exit port).
// Ownership: borrows the Vcpu (must outlive the runner); shares the buses and the stop flag.
// Thread-safety: Run()/CompletePendingIo() on one thread at a time (the vCPU thread); Kick(),
// RequestStop() and StopFlag are thread-safe and async-safe enough to call from any thread.
#ifndef AMALGAM_VCPU_RUNNER_H_
#define AMALGAM_VCPU_RUNNER_H_

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "vcpu/bus.h"
#include "vcpu/vcpu.h"

namespace amalgam::vcpu {

// A VM-wide "please stop" raised by a device (debug-exit, a fatal device error) or the VMM.
// Every runner sharing it returns kStopRequested after its current exit. The raiser should also
// Kick() the other vCPUs' runners so they notice promptly. Thread-safe.
class StopFlag {
 public:
  void Request(int32_t code = 0) {
    code_.store(code, std::memory_order_relaxed);
    requested_.store(true, std::memory_order_release);
  }
  bool requested() const { return requested_.load(std::memory_order_acquire); }
  int32_t code() const { return code_.load(std::memory_order_relaxed); }
  void Reset() { requested_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> requested_{false};
  std::atomic<int32_t> code_{0};
};

enum class VcpuExitReason {
  kKicked,         // Kick() was called
  kStopRequested,  // the StopFlag was raised (stop_code says by whom)
  kHlt,            // HLT without an in-kernel irqchip
  kShutdown,       // triple fault / shutdown
  kSystemEvent,    // KVM_EXIT_SYSTEM_EVENT (reset, shutdown, crash)
  kInternalError,  // KVM_EXIT_INTERNAL_ERROR (e.g. an instruction KVM cannot emulate)
  kFailEntry,      // KVM_EXIT_FAIL_ENTRY
  kUnhandled,      // any other exit reason (raw_exit_reason)
};
const char* VcpuExitReasonName(VcpuExitReason reason);

// Why Run() returned, with what is known about the guest at that point.
struct VcpuExit {
  VcpuExitReason reason = VcpuExitReason::kUnhandled;
  uint32_t raw_exit_reason = 0;         // KVM_EXIT_*
  uint64_t rip = 0;                     // guest RIP at the exit (0 when registers were unreadable)
  int32_t stop_code = 0;                // kStopRequested: StopFlag::code()
  uint32_t system_event_type = 0;       // kSystemEvent: KVM_SYSTEM_EVENT_*
  uint32_t internal_suberror = 0;       // kInternalError: KVM_INTERNAL_ERROR_*
  std::vector<uint64_t> internal_data;  // kInternalError: run->internal.data
  std::vector<uint8_t> instruction_bytes;  // kInternalError: up to 15 bytes at RIP, if readable
  uint64_t fail_entry_reason = 0;          // kFailEntry: hardware_entry_failure_reason
  uint32_t fail_entry_cpu = 0;
  // One line for logs, e.g. "internal error (suberror 1: emulation failure) at rip=0x1003
  // bytes=f3 0f b8 c0 data=[...]".
  std::string ToString() const;
};

// Reads guest-physical memory for diagnostics (instruction bytes). Returns false if unmapped.
using GuestPhysReader = std::function<bool(uint64_t gpa, absl::Span<uint8_t> out)>;

// A snapshot of a runner's counters.
struct RunnerStats {
  uint64_t io_exits = 0;
  uint64_t mmio_exits = 0;
  uint64_t unclaimed_accesses = 0;  // PIO/MMIO no device claimed (reads saw all ones)
  uint64_t interrupted = 0;         // KVM_RUN returned EINTR
};

class VcpuRunner {
 public:
  // pio/mmio/stop may be null (no devices / no stop flag).
  VcpuRunner(Vcpu* vcpu, std::shared_ptr<Bus> pio_bus, std::shared_ptr<Bus> mmio_bus,
             std::shared_ptr<StopFlag> stop = nullptr);
  ~VcpuRunner();
  VcpuRunner(const VcpuRunner&) = delete;
  VcpuRunner& operator=(const VcpuRunner&) = delete;

  // Lets error reports include the instruction bytes at RIP.
  void set_guest_reader(GuestPhysReader reader) { reader_ = std::move(reader); }

  // Runs the vCPU on the calling thread until an exit the caller must see. PIO/MMIO exits are
  // dispatched to the buses and the loop continues. Non-OK only when KVM_RUN itself fails.
  // Blocks the kick signal on the calling thread (it is only unblocked inside KVM_RUN).
  absl::StatusOr<VcpuExit> Run();

  // Makes Run() return kKicked promptly, from any thread; a kick that arrives while no Run() is
  // in progress makes the next Run() return at once (it is never lost).
  void Kick();

  // If the last exit was PIO/MMIO and the vCPU has not re-entered, re-enter once with
  // immediate_exit so KVM completes the access (needed before capturing state).
  absl::Status CompletePendingIo();
  bool io_pending() const { return io_pending_; }

  // Counters, snapshotted from any thread (also while Run() is running: each counter is an
  // atomic only the vCPU thread writes, so the snapshot is live but not one instant).
  RunnerStats stats() const;
  Vcpu* vcpu() const { return vcpu_; }

  // The real-time signal used for kicks (installed once per process, no-op handler).
  static int KickSignal();

 private:
  void HandleIo();
  void HandleMmio();
  VcpuExit MakeExit(VcpuExitReason reason);
  VcpuExit MakeInternalErrorExit();
  bool ConsumeKick();
  void EatKickSignals();
  absl::Status PrepareThread();

  Vcpu* vcpu_;
  std::shared_ptr<Bus> pio_;
  std::shared_ptr<Bus> mmio_;
  std::shared_ptr<StopFlag> stop_;
  GuestPhysReader reader_;
  // Written by the vCPU thread only (plain load+store, no locked instruction on the exit path);
  // read by stats() from any thread.
  struct Counters {
    std::atomic<uint64_t> io_exits{0}, mmio_exits{0}, unclaimed_accesses{0}, interrupted{0};
  };
  Counters counters_;
  bool io_pending_ = false;
  bool signal_mask_set_ = false;

  std::atomic<bool> kick_pending_{false};
  absl::Mutex thread_mu_;
  bool thread_valid_ ABSL_GUARDED_BY(thread_mu_) = false;
  pthread_t thread_ ABSL_GUARDED_BY(thread_mu_);
};

}  // namespace amalgam::vcpu

#endif  // AMALGAM_VCPU_RUNNER_H_
