// ExitOutcome: why a VM stopped, and the interface devices use to ask for a stop.
// Thread-safety: ExitOutcome is a value type; StopRequester implementations must be thread-safe
// (devices call them from vCPU threads).
#ifndef AMALGAM_VMM_EXIT_OUTCOME_H_
#define AMALGAM_VMM_EXIT_OUTCOME_H_

#include <cstdint>
#include <string>

namespace amalgam::vmm {

enum class ExitKind {
  kDebugExit,      // the guest wrote v to the isa-debug-exit port; status (v << 1) | 1
  kReset,          // guest-requested reset (i8042 0xFE, ...): amalgam does not reboot, it stops
  kPowerOff,       // guest-requested power-off
  kStopped,        // the host asked (Machine::Stop, a signal, the control plane)
  kTripleFault,    // KVM_EXIT_SHUTDOWN
  kInternalError,  // KVM_EXIT_INTERNAL_ERROR / emulation failure
  kVmmError,       // the VMM itself failed (an ioctl, a thread); detail says which
};

const char* ExitKindName(ExitKind kind);

struct ExitOutcome {
  ExitKind kind = ExitKind::kStopped;
  uint32_t debug_exit_value = 0;  // kDebugExit only: the value the guest wrote
  std::string detail;             // one human-readable line (reason, RIP, instruction bytes)

  static ExitOutcome DebugExit(uint32_t value);
  static ExitOutcome Of(ExitKind kind, std::string detail);
};

// Process exit status for an outcome (documented in vmm/README.md and `amalgam --help`):
//   debug-exit v -> ((v << 1) | 1) & 0xff (always odd), reset/power-off/stopped -> 0,
//   triple fault -> kExitTripleFault, internal error -> kExitInternalError,
//   VMM failure -> kExitVmmError. Usage/config errors (before boot) -> kExitUsage.
inline constexpr int kExitUsage = 2;
inline constexpr int kExitTripleFault = 4;
inline constexpr int kExitInternalError = 6;
inline constexpr int kExitVmmError = 8;
int ExitStatusFor(const ExitOutcome& outcome);

// What a device calls to end the VM (debug-exit, i8042 reset). The first request wins; later
// ones are ignored. Must not block on the calling vCPU.
class StopRequester {
 public:
  virtual ~StopRequester() = default;
  virtual void RequestStop(ExitOutcome outcome) = 0;
};

}  // namespace amalgam::vmm

#endif  // AMALGAM_VMM_EXIT_OUTCOME_H_
