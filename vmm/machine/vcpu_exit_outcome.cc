#include "vmm/machine/vcpu_exit_outcome.h"

#include "absl/strings/str_format.h"

namespace amalgam::vmm::machine {

std::optional<ExitOutcome> OutcomeForVcpuExit(uint32_t index, const vcpu::VcpuExit& exit) {
  using vcpu::VcpuExitReason;
  switch (exit.reason) {
    case VcpuExitReason::kKicked:
    case VcpuExitReason::kStopRequested:
      return std::nullopt;
    case VcpuExitReason::kShutdown:
      return ExitOutcome::Of(
          ExitKind::kTripleFault,
          absl::StrFormat("guest triple fault (KVM_EXIT_SHUTDOWN) at RIP=%#x on vcpu %u", exit.rip,
                          index));
    case VcpuExitReason::kInternalError:
      return ExitOutcome::Of(
          ExitKind::kInternalError,
          absl::StrFormat("KVM internal error on vcpu %u: %s", index, exit.ToString()));
    case VcpuExitReason::kSystemEvent:
      if (exit.system_event_type == KVM_SYSTEM_EVENT_RESET) {
        return ExitOutcome::Of(ExitKind::kReset, "guest requested a reset");
      }
      if (exit.system_event_type == KVM_SYSTEM_EVENT_SHUTDOWN) {
        return ExitOutcome::Of(ExitKind::kPowerOff, "guest powered off");
      }
      return ExitOutcome::Of(ExitKind::kVmmError,
                             absl::StrFormat("vcpu %u: guest system event %u (crash?) at RIP=%#x",
                                             index, exit.system_event_type, exit.rip));
    case VcpuExitReason::kHlt:
      return ExitOutcome::Of(ExitKind::kPowerOff,
                             absl::StrFormat("vcpu %u halted at RIP=%#x", index, exit.rip));
    case VcpuExitReason::kFailEntry:
    case VcpuExitReason::kUnhandled:
      return ExitOutcome::Of(ExitKind::kVmmError,
                             absl::StrFormat("vcpu %u: %s", index, exit.ToString()));
  }
  return ExitOutcome::Of(ExitKind::kVmmError, "unknown vCPU exit");
}

}  // namespace amalgam::vmm::machine
