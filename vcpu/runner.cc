#include "vcpu/runner.h"

#include <signal.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "vcpu/errno_status.h"
#include "vcpu/kvm_uapi.h"

namespace amalgam::vcpu {
namespace {

// The no-op handler: its only job is to make a blocking KVM_RUN return EINTR. Installing a
// handler (rather than SIG_IGN) is required, since ignored signals do not interrupt syscalls.
void KickHandler(int) {}

int InstallKickSignal() {
  int sig = SIGRTMIN + 4;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_handler = KickHandler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return EINTR
  sigaction(sig, &sa, nullptr);
  return sig;
}

// immediate_exit is a byte shared with the kernel; access it atomically.
void SetImmediateExit(kvm_run* run, uint8_t value) {
  __atomic_store_n(&run->immediate_exit, value, __ATOMIC_SEQ_CST);
}

}  // namespace

int VcpuRunner::KickSignal() {
  static const int sig = InstallKickSignal();  // thread-safe one-time install
  return sig;
}

VcpuRunner::VcpuRunner(Vcpu* vcpu, std::shared_ptr<Bus> pio_bus, std::shared_ptr<Bus> mmio_bus,
                       std::shared_ptr<StopFlag> stop)
    : vcpu_(vcpu), pio_(std::move(pio_bus)), mmio_(std::move(mmio_bus)), stop_(std::move(stop)) {
  KickSignal();
}

VcpuRunner::~VcpuRunner() = default;

absl::Status VcpuRunner::PrepareThread() {
  // Keep the kick signal blocked on this thread except inside KVM_RUN (KVM_SET_SIGNAL_MASK swaps
  // in a mask without it). A kick that lands while the thread runs device code then stays
  // pending and cannot interrupt the device's own syscalls; KVM_RUN sees it at once on entry.
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, KickSignal());
  sigset_t old;
  if (pthread_sigmask(SIG_BLOCK, &block, &old) != 0) {
    return absl::InternalError("pthread_sigmask failed");
  }
  if (!signal_mask_set_) {
    sigdelset(&old, KickSignal());
    // The kernel's sigset is 8 bytes on x86-64; glibc's sigset_t is larger (its prefix matches).
    std::vector<uint8_t> buf(sizeof(kvm_signal_mask) + 8);
    auto* mask = reinterpret_cast<kvm_signal_mask*>(buf.data());
    mask->len = 8;
    std::memcpy(mask->sigset, &old, 8);
    if (::ioctl(vcpu_->fd(), KVM_SET_SIGNAL_MASK, mask) < 0) {
      return ErrnoStatus(errno, "KVM_SET_SIGNAL_MASK");
    }
    signal_mask_set_ = true;
  }
  return absl::OkStatus();
}

void VcpuRunner::Kick() {
  // Order matters (see ConsumeKick): the pending flag first, then immediate_exit, then the
  // signal. immediate_exit covers a vCPU about to enter KVM_RUN; the signal one already inside.
  kick_pending_.store(true, std::memory_order_seq_cst);
  SetImmediateExit(vcpu_->run(), 1);
  absl::MutexLock lock(&thread_mu_);
  if (thread_valid_) pthread_kill(thread_, KickSignal());
}

void VcpuRunner::EatKickSignals() {
  // The kick signal is blocked outside KVM_RUN, and KVM restores that mask before returning to
  // user space, so a kick signal that interrupted KVM_RUN stays pending and would make every
  // later KVM_RUN fail with EINTR. Consume it without waiting.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, KickSignal());
  timespec zero{0, 0};
  while (sigtimedwait(&set, nullptr, &zero) >= 0) {
  }
}

bool VcpuRunner::ConsumeKick() {
  // Clear immediate_exit before taking the flag: a Kick() racing with us either is absorbed into
  // this return, or leaves both its flag and immediate_exit set for the next Run().
  SetImmediateExit(vcpu_->run(), 0);
  return kick_pending_.exchange(false, std::memory_order_seq_cst);
}

VcpuExit VcpuRunner::MakeExit(VcpuExitReason reason) {
  VcpuExit exit;
  exit.reason = reason;
  exit.raw_exit_reason = vcpu_->run()->exit_reason;
  absl::StatusOr<kvm_regs> regs = vcpu_->GetRegs();
  if (regs.ok()) exit.rip = regs->rip;
  return exit;
}

namespace {
// Single-writer increment: the vCPU thread is the only writer, so no read-modify-write lock.
void Bump(std::atomic<uint64_t>& counter) {
  counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}
}  // namespace

RunnerStats VcpuRunner::stats() const {
  RunnerStats s;
  s.io_exits = counters_.io_exits.load(std::memory_order_relaxed);
  s.mmio_exits = counters_.mmio_exits.load(std::memory_order_relaxed);
  s.unclaimed_accesses = counters_.unclaimed_accesses.load(std::memory_order_relaxed);
  s.interrupted = counters_.interrupted.load(std::memory_order_relaxed);
  return s;
}

void VcpuRunner::HandleIo() {
  kvm_run* run = vcpu_->run();
  Bump(counters_.io_exits);
  const uint32_t size = run->io.size;
  const uint32_t count = run->io.count;
  const uint64_t offset = run->io.data_offset;
  // The data lives inside the kvm_run mapping; never trust the kernel-provided geometry to be
  // inside our mapping without checking (a bad value would be a kernel bug, not a crash here).
  if (size == 0 || size > 8 || offset + uint64_t{size} * count > vcpu_->run_size()) return;
  uint8_t* data = reinterpret_cast<uint8_t*>(run) + offset;
  for (uint32_t i = 0; i < count; ++i) {
    absl::Span<uint8_t> item(data + i * size, size);
    bool claimed;
    if (run->io.direction == KVM_EXIT_IO_OUT) {
      claimed = pio_ != nullptr && pio_->Write(run->io.port, item);
    } else if (pio_ != nullptr) {
      claimed = pio_->Read(run->io.port, item);
    } else {
      std::memset(item.data(), 0xff, size);
      claimed = false;
    }
    if (!claimed) Bump(counters_.unclaimed_accesses);
  }
  io_pending_ = true;
}

void VcpuRunner::HandleMmio() {
  kvm_run* run = vcpu_->run();
  Bump(counters_.mmio_exits);
  uint32_t len = run->mmio.len > 8 ? 8 : run->mmio.len;
  absl::Span<uint8_t> data(run->mmio.data, len);
  bool claimed;
  if (run->mmio.is_write) {
    claimed = mmio_ != nullptr && mmio_->Write(run->mmio.phys_addr, data);
  } else if (mmio_ != nullptr) {
    claimed = mmio_->Read(run->mmio.phys_addr, data);
  } else {
    std::memset(data.data(), 0xff, len);
    claimed = false;
  }
  if (!claimed) Bump(counters_.unclaimed_accesses);
  io_pending_ = true;
}

absl::StatusOr<VcpuExit> VcpuRunner::Run() {
  if (absl::Status s = PrepareThread(); !s.ok()) return s;
  {
    absl::MutexLock lock(&thread_mu_);
    thread_ = pthread_self();
    thread_valid_ = true;
  }
  struct Unregister {
    VcpuRunner* self;
    ~Unregister() {
      absl::MutexLock lock(&self->thread_mu_);
      self->thread_valid_ = false;
    }
  } unregister{this};

  kvm_run* run = vcpu_->run();
  for (;;) {
    if (stop_ != nullptr && stop_->requested()) {
      // Let KVM finish a PIO/MMIO access the guest is in the middle of, so the state that the
      // caller may capture next is consistent.
      if (absl::Status s = CompletePendingIo(); !s.ok()) return s;
      VcpuExit exit = MakeExit(VcpuExitReason::kStopRequested);
      exit.stop_code = stop_->code();
      return exit;
    }
    // A kick whose immediate_exit store we cleared (CompletePendingIo) is still pending here.
    if (kick_pending_.load(std::memory_order_seq_cst) && ConsumeKick()) {
      return MakeExit(VcpuExitReason::kKicked);
    }
    absl::StatusOr<Vcpu::RunResult> r = vcpu_->RunOnce();
    if (!r.ok()) return r.status();
    if (*r == Vcpu::RunResult::kInterrupted) {
      // KVM completed any pending PIO/MMIO before honouring immediate_exit or the signal.
      io_pending_ = false;
      Bump(counters_.interrupted);
      EatKickSignals();
      if (ConsumeKick()) return MakeExit(VcpuExitReason::kKicked);
      continue;  // some other signal: re-enter
    }
    io_pending_ = false;
    switch (run->exit_reason) {
      case KVM_EXIT_IO:
        HandleIo();
        break;
      case KVM_EXIT_MMIO:
        HandleMmio();
        break;
      case KVM_EXIT_INTR:
        break;
      case KVM_EXIT_HLT:
        return MakeExit(VcpuExitReason::kHlt);
      case KVM_EXIT_SHUTDOWN:
        return MakeExit(VcpuExitReason::kShutdown);
      case KVM_EXIT_SYSTEM_EVENT: {
        VcpuExit exit = MakeExit(VcpuExitReason::kSystemEvent);
        exit.system_event_type = run->system_event.type;
        return exit;
      }
      case KVM_EXIT_INTERNAL_ERROR:
        return MakeInternalErrorExit();
      case KVM_EXIT_FAIL_ENTRY: {
        VcpuExit exit = MakeExit(VcpuExitReason::kFailEntry);
        exit.fail_entry_reason = run->fail_entry.hardware_entry_failure_reason;
        exit.fail_entry_cpu = run->fail_entry.cpu;
        return exit;
      }
      default:
        return MakeExit(VcpuExitReason::kUnhandled);
    }
  }
}

VcpuExit VcpuRunner::MakeInternalErrorExit() {
  kvm_run* run = vcpu_->run();
  VcpuExit exit = MakeExit(VcpuExitReason::kInternalError);
  exit.internal_suberror = run->internal.suberror;
  uint32_t ndata = run->internal.ndata;
  if (ndata > sizeof(run->internal.data) / sizeof(run->internal.data[0])) {
    ndata = sizeof(run->internal.data) / sizeof(run->internal.data[0]);
  }
  exit.internal_data.assign(run->internal.data, run->internal.data + ndata);
  // Instruction bytes: the linear RIP (CS base + RIP) through the guest's page tables.
  absl::StatusOr<kvm_sregs> sregs = vcpu_->GetSregs();
  if (!sregs.ok() || !reader_) return exit;
  uint64_t linear = sregs->cs.base + exit.rip;
  if ((sregs->efer & (1u << 10)) == 0) linear &= 0xffffffffu;  // not in long mode (LMA)
  uint64_t gpa = linear;
  if (sregs->cr0 & (1u << 31)) {  // paging on
    absl::StatusOr<kvm_translation> tr = vcpu_->Translate(linear);
    if (!tr.ok() || !tr->valid) return exit;
    gpa = tr->physical_address;
  }
  // Read up to 15 bytes, but not across a page (the next page may map elsewhere).
  uint64_t n = 15;
  uint64_t to_page_end = 4096 - (gpa & 4095);
  if (n > to_page_end) n = to_page_end;
  std::vector<uint8_t> bytes(n);
  if (reader_(gpa, absl::MakeSpan(bytes))) exit.instruction_bytes = std::move(bytes);
  return exit;
}

absl::Status VcpuRunner::CompletePendingIo() {
  if (!io_pending_) return absl::OkStatus();
  if (absl::Status s = PrepareThread(); !s.ok()) return s;
  kvm_run* run = vcpu_->run();
  SetImmediateExit(run, 1);
  absl::StatusOr<Vcpu::RunResult> r = vcpu_->RunOnce();
  // A Kick() that arrived meanwhile keeps kick_pending_, which the next Run() checks first.
  SetImmediateExit(run, 0);
  if (!r.ok()) return r.status();
  EatKickSignals();
  io_pending_ = false;
  if (*r != Vcpu::RunResult::kInterrupted) {
    return absl::InternalError(absl::StrFormat(
        "completing pending I/O on vCPU %u: KVM_RUN with immediate_exit returned exit %u",
        vcpu_->id(), run->exit_reason));
  }
  return absl::OkStatus();
}

}  // namespace amalgam::vcpu
