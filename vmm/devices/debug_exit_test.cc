#include "vmm/devices/debug_exit.h"

#include <catch2/catch.hpp>
#include <memory>

#include "vcpu/bus.h"
#include "vmm/devices/test_util.h"

namespace amalgam::vmm::devices {
namespace {

TEST_CASE("debug-exit: a byte write v stops with status (v << 1) | 1") {
  auto stop = std::make_shared<RecordingStop>();
  vcpu::Bus bus;
  REQUIRE(bus.Insert(std::make_shared<DebugExit>(stop), DebugExit::kPort, DebugExit::kSize).ok());
  uint8_t v = 0x10;
  REQUIRE(bus.Write(0xf4, absl::MakeConstSpan(&v, 1)));
  auto outcomes = stop->outcomes();
  REQUIRE(outcomes.size() == 1);
  CHECK(outcomes[0].kind == ExitKind::kDebugExit);
  CHECK(outcomes[0].debug_exit_value == 0x10);
  CHECK(ExitStatusFor(outcomes[0]) == 0x21);
}

TEST_CASE("debug-exit: 32-bit writes are little endian and the status keeps 8 bits") {
  auto stop = std::make_shared<RecordingStop>();
  DebugExit dev(stop);
  const uint8_t v[4] = {0x00, 0x01, 0x00, 0x00};  // 0x100
  dev.Write(0, v);
  REQUIRE(stop->outcomes().size() == 1);
  CHECK(stop->outcomes()[0].debug_exit_value == 0x100);
  CHECK(ExitStatusFor(stop->outcomes()[0]) == 0x01);  // (0x100 << 1 | 1) & 0xff
  const uint8_t zero = 0;
  dev.Write(0, absl::MakeConstSpan(&zero, 1));
  CHECK(ExitStatusFor(stop->outcomes()[1]) == 1);
}

TEST_CASE("debug-exit: reads see all ones and do not stop") {
  auto stop = std::make_shared<RecordingStop>();
  DebugExit dev(stop);
  uint8_t buf[4] = {};
  dev.Read(0, absl::MakeSpan(buf));
  CHECK(buf[0] == 0xff);
  CHECK(buf[3] == 0xff);
  CHECK(stop->outcomes().empty());
}

TEST_CASE("exit status mapping is documented and distinct") {
  CHECK(ExitStatusFor(ExitOutcome::Of(ExitKind::kPowerOff, "")) == 0);
  CHECK(ExitStatusFor(ExitOutcome::Of(ExitKind::kReset, "")) == 0);
  CHECK(ExitStatusFor(ExitOutcome::Of(ExitKind::kTripleFault, "")) == kExitTripleFault);
  CHECK(ExitStatusFor(ExitOutcome::Of(ExitKind::kInternalError, "")) == kExitInternalError);
  CHECK(ExitStatusFor(ExitOutcome::Of(ExitKind::kVmmError, "")) == kExitVmmError);
}

}  // namespace
}  // namespace amalgam::vmm::devices
