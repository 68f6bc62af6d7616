#include "vmm/devices/power_off.h"

#include <catch2/catch.hpp>
#include <memory>

#include "vcpu/bus.h"
#include "vmm/devices/test_util.h"

namespace amalgam::vmm::devices {
namespace {

TEST_CASE("power-off: S5 with SLP_EN (0x34) on the control port stops with status 0") {
  auto stop = std::make_shared<RecordingStop>();
  vcpu::Bus bus;
  REQUIRE(bus.Insert(std::make_shared<PowerOff>(stop), PowerOff::kPort, PowerOff::kSize).ok());
  const uint8_t s5 = 0x34;
  REQUIRE(bus.Write(PowerOff::kPort, absl::MakeConstSpan(&s5, 1)));
  auto outcomes = stop->outcomes();
  REQUIRE(outcomes.size() == 1);
  CHECK(outcomes[0].kind == ExitKind::kPowerOff);
  CHECK(outcomes[0].detail == "power-off");
  CHECK(ExitStatusFor(outcomes[0]) == 0);
}

TEST_CASE("power-off: other sleep types, SLP_EN clear, and the status port do not stop") {
  auto stop = std::make_shared<RecordingStop>();
  PowerOff dev(stop);
  const uint8_t s5_no_enable = 5 << 2;
  dev.Write(0, absl::MakeConstSpan(&s5_no_enable, 1));
  const uint8_t s3 = (3 << 2) | PowerOff::kSleepEnable;
  dev.Write(0, absl::MakeConstSpan(&s3, 1));
  const uint8_t s5 = 0x34;
  dev.Write(1, absl::MakeConstSpan(&s5, 1));  // the status register
  dev.Write(0, {});
  CHECK(stop->outcomes().empty());
  // Other bits around SLP_TYP/SLP_EN do not matter.
  const uint8_t s5_noise = 0x34 | 0x83;
  dev.Write(0, absl::MakeConstSpan(&s5_noise, 1));
  CHECK(stop->outcomes().size() == 1);
}

TEST_CASE("power-off: reads see zero and do not stop") {
  auto stop = std::make_shared<RecordingStop>();
  PowerOff dev(stop);
  uint8_t buf[2] = {0xaa, 0xaa};
  dev.Read(0, buf);
  CHECK(buf[0] == 0);
  CHECK(buf[1] == 0);
  CHECK(stop->outcomes().empty());
}

}  // namespace
}  // namespace amalgam::vmm::devices
