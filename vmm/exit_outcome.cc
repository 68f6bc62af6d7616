#include "vmm/exit_outcome.h"

#include <utility>

namespace amalgam::vmm {

const char* ExitKindName(ExitKind kind) {
  switch (kind) {
    case ExitKind::kDebugExit:
      return "debug-exit";
    case ExitKind::kReset:
      return "reset";
    case ExitKind::kPowerOff:
      return "poweroff";
    case ExitKind::kStopped:
      return "stopped";
    case ExitKind::kTripleFault:
      return "triple-fault";
    case ExitKind::kInternalError:
      return "internal-error";
    case ExitKind::kVmmError:
      return "vmm-error";
  }
  return "unknown";
}

ExitOutcome ExitOutcome::DebugExit(uint32_t value) {
  ExitOutcome o;
  o.kind = ExitKind::kDebugExit;
  o.debug_exit_value = value;
  o.detail = "guest wrote " + std::to_string(value) + " to the debug-exit port";
  return o;
}

ExitOutcome ExitOutcome::Of(ExitKind kind, std::string detail) {
  ExitOutcome o;
  o.kind = kind;
  o.detail = std::move(detail);
  return o;
}

int ExitStatusFor(const ExitOutcome& outcome) {
  switch (outcome.kind) {
    case ExitKind::kDebugExit:
      // The OS keeps 8 bits of the status; (v << 1) | 1 is odd, so it never collides with the
      // even codes below.
      return static_cast<int>(((outcome.debug_exit_value << 1) | 1u) & 0xffu);
    case ExitKind::kReset:
    case ExitKind::kPowerOff:
    case ExitKind::kStopped:
      return 0;
    case ExitKind::kTripleFault:
      return kExitTripleFault;
    case ExitKind::kInternalError:
      return kExitInternalError;
    case ExitKind::kVmmError:
      return kExitVmmError;
  }
  return kExitVmmError;
}

}  // namespace amalgam::vmm
