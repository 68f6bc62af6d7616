#include "vmm/devices/i8042.h"

#include <catch2/catch.hpp>
#include <memory>

#include "vcpu/bus.h"
#include "vmm/devices/test_util.h"

namespace amalgam::vmm::devices {
namespace {

struct Fixture {
  std::shared_ptr<RecordingStop> stop = std::make_shared<RecordingStop>();
  vcpu::Bus bus;
  Fixture() {
    REQUIRE(bus.Insert(std::make_shared<I8042>(stop), I8042::kBasePort, I8042::kPortSpan).ok());
  }
  uint8_t In(uint64_t port) {
    uint8_t v = 0;
    REQUIRE(bus.Read(port, absl::MakeSpan(&v, 1)));
    return v;
  }
  void Out(uint64_t port, uint8_t v) { REQUIRE(bus.Write(port, absl::MakeConstSpan(&v, 1))); }
};

TEST_CASE("i8042: 0xFE on the command port requests a stop with reason reset") {
  Fixture f;
  f.Out(0x64, 0xfe);
  auto outcomes = f.stop->outcomes();
  REQUIRE(outcomes.size() == 1);
  CHECK(outcomes[0].kind == ExitKind::kReset);
  CHECK(std::string(ExitKindName(outcomes[0].kind)) == "reset");
  CHECK(ExitStatusFor(outcomes[0]) == 0);
}

TEST_CASE("i8042: 0xFE on the data port is not a reset") {
  Fixture f;
  f.Out(0x60, 0xfe);
  CHECK(f.stop->outcomes().empty());
}

TEST_CASE("i8042: self test, command byte round trip and output-buffer status") {
  Fixture f;
  CHECK((f.In(0x64) & 0x01) == 0);
  f.Out(0x64, 0xaa);
  CHECK((f.In(0x64) & 0x01) == 1);
  CHECK(f.In(0x60) == 0x55);
  CHECK((f.In(0x64) & 0x01) == 0);
  f.Out(0x64, 0x60);
  f.Out(0x60, 0x31);
  f.Out(0x64, 0x20);
  CHECK(f.In(0x60) == 0x31);
  CHECK(f.stop->outcomes().empty());
}

TEST_CASE("i8042: pulling the reset line through the output port resets") {
  Fixture f;
  f.Out(0x64, 0xd1);
  f.Out(0x60, 0xfe);  // bit 0 low
  REQUIRE(f.stop->outcomes().size() == 1);
  CHECK(f.stop->outcomes()[0].kind == ExitKind::kReset);
}

TEST_CASE("i8042: the output queue is bounded") {
  Fixture f;
  for (int i = 0; i < 1000; ++i) f.Out(0x64, 0xaa);
  int n = 0;
  while ((f.In(0x64) & 0x01) && n < 2000) {
    f.In(0x60);
    ++n;
  }
  CHECK(n == 16);
}

}  // namespace
}  // namespace amalgam::vmm::devices
