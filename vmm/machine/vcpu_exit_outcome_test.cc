#include "vmm/machine/vcpu_exit_outcome.h"

#include <catch2/catch.hpp>
#include <string>

namespace amalgam::vmm::machine {
namespace {

using vcpu::VcpuExit;
using vcpu::VcpuExitReason;

VcpuExit Exit(VcpuExitReason reason, uint64_t rip = 0x1234) {
  VcpuExit e;
  e.reason = reason;
  e.rip = rip;
  return e;
}

TEST_CASE("vcpu exits: kicks and stop requests are absorbed") {
  CHECK_FALSE(OutcomeForVcpuExit(0, Exit(VcpuExitReason::kKicked)).has_value());
  CHECK_FALSE(OutcomeForVcpuExit(0, Exit(VcpuExitReason::kStopRequested)).has_value());
}

TEST_CASE("vcpu exits: triple fault names the RIP and the vCPU") {
  auto o = OutcomeForVcpuExit(1, Exit(VcpuExitReason::kShutdown, 0xffffffff81000000));
  REQUIRE(o.has_value());
  CHECK(o->kind == ExitKind::kTripleFault);
  CHECK(o->detail == "guest triple fault (KVM_EXIT_SHUTDOWN) at RIP=0xffffffff81000000 on vcpu 1");
}

TEST_CASE("vcpu exits: internal error carries suberror and instruction bytes") {
  VcpuExit e = Exit(VcpuExitReason::kInternalError, 0x100000);
  e.internal_suberror = 1;
  e.instruction_bytes = {0xcc};
  auto o = OutcomeForVcpuExit(0, e);
  REQUIRE(o.has_value());
  CHECK(o->kind == ExitKind::kInternalError);
  CHECK(o->detail.find("KVM internal error on vcpu 0: ") == 0);
  CHECK(o->detail.find("suberror=1") != std::string::npos);
  CHECK(o->detail.find("bytes=cc") != std::string::npos);
}

TEST_CASE("vcpu exits: system events map to reset, power-off or a VMM error") {
  VcpuExit e = Exit(VcpuExitReason::kSystemEvent);
  e.system_event_type = KVM_SYSTEM_EVENT_RESET;
  CHECK(OutcomeForVcpuExit(0, e)->kind == ExitKind::kReset);
  e.system_event_type = KVM_SYSTEM_EVENT_SHUTDOWN;
  CHECK(OutcomeForVcpuExit(0, e)->kind == ExitKind::kPowerOff);
  e.system_event_type = KVM_SYSTEM_EVENT_CRASH;
  CHECK(OutcomeForVcpuExit(0, e)->kind == ExitKind::kVmmError);
}

TEST_CASE("vcpu exits: entry failures and unknown exits are VMM errors") {
  CHECK(OutcomeForVcpuExit(0, Exit(VcpuExitReason::kFailEntry))->kind == ExitKind::kVmmError);
  auto o = OutcomeForVcpuExit(2, Exit(VcpuExitReason::kUnhandled));
  REQUIRE(o.has_value());
  CHECK(o->kind == ExitKind::kVmmError);
  CHECK(o->detail.find("vcpu 2: ") == 0);
}

}  // namespace
}  // namespace amalgam::vmm::machine
