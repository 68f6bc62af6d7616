// VcpuExit formatting (kept apart from the run loop).
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "vcpu/kvm_uapi.h"
#include "vcpu/runner.h"

namespace amalgam::vcpu {
namespace {

const char* InternalSuberrorName(uint32_t suberror) {
  switch (suberror) {
    case KVM_INTERNAL_ERROR_EMULATION:
      return "emulation failure";
    case KVM_INTERNAL_ERROR_SIMUL_EX:
      return "exception while delivering an exception";
    case KVM_INTERNAL_ERROR_DELIVERY_EV:
      return "event delivery failed";
    case KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON:
      return "unexpected exit reason";
    default:
      return "unknown suberror";
  }
}

}  // namespace

const char* VcpuExitReasonName(VcpuExitReason reason) {
  switch (reason) {
    case VcpuExitReason::kKicked:
      return "kicked";
    case VcpuExitReason::kStopRequested:
      return "stop requested";
    case VcpuExitReason::kHlt:
      return "hlt";
    case VcpuExitReason::kShutdown:
      return "shutdown (triple fault)";
    case VcpuExitReason::kSystemEvent:
      return "system event";
    case VcpuExitReason::kInternalError:
      return "internal error";
    case VcpuExitReason::kFailEntry:
      return "entry failed";
    case VcpuExitReason::kUnhandled:
      return "unhandled exit";
  }
  return "?";
}

std::string VcpuExit::ToString() const {
  std::string s = absl::StrFormat("%s at rip=%#x", VcpuExitReasonName(reason), rip);
  switch (reason) {
    case VcpuExitReason::kStopRequested:
      absl::StrAppendFormat(&s, " code=%d", stop_code);
      break;
    case VcpuExitReason::kSystemEvent:
      absl::StrAppendFormat(&s, " type=%u", system_event_type);
      break;
    case VcpuExitReason::kInternalError: {
      absl::StrAppendFormat(&s, " suberror=%u (%s)", internal_suberror,
                            InternalSuberrorName(internal_suberror));
      if (!instruction_bytes.empty()) {
        absl::StrAppend(
            &s, " bytes=", absl::StrJoin(instruction_bytes, " ", [](std::string* out, uint8_t b) {
              absl::StrAppendFormat(out, "%02x", b);
            }));
      }
      absl::StrAppend(
          &s, " data=[",
          absl::StrJoin(internal_data, ",",
                        [](std::string* out, uint64_t v) { absl::StrAppendFormat(out, "%#x", v); }),
          "]");
      break;
    }
    case VcpuExitReason::kFailEntry:
      absl::StrAppendFormat(&s, " hardware_entry_failure_reason=%#x cpu=%u", fail_entry_reason,
                            fail_entry_cpu);
      break;
    case VcpuExitReason::kUnhandled:
      absl::StrAppendFormat(&s, " exit_reason=%u", raw_exit_reason);
      break;
    default:
      break;
  }
  return s;
}

}  // namespace amalgam::vcpu
