#include "vmm/devices/input_pump.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "vmm/devices/test_util.h"

namespace amalgam::vmm::devices {
namespace {

// Reads RBR until `n` bytes arrived (bounded by iterations, not by a time assertion).
std::string Drain(Serial16550& uart, size_t n) {
  std::string got;
  for (int i = 0; i < 100000 && got.size() < n; ++i) {
    uint8_t lsr = 0;
    uart.Read(5, absl::MakeSpan(&lsr, 1));
    if (lsr & 0x01) {
      uint8_t b = 0;
      uart.Read(0, absl::MakeSpan(&b, 1));
      got.push_back(static_cast<char>(b));
    } else {
      usleep(1000);
    }
  }
  return got;
}

TEST_CASE("input pump: pipe bytes reach RBR in order, EOF ends the pump") {
  int p[2];
  REQUIRE(pipe(p) == 0);
  Serial16550 uart(std::make_shared<StringSink>(), nullptr);
  auto pump = InputPump::Start(p[0], &uart);
  REQUIRE(pump.ok());
  REQUIRE(write(p[1], "hello", 5) == 5);
  CHECK(Drain(uart, 5) == "hello");
  CHECK_FALSE((*pump)->finished());
  close(p[1]);
  for (int i = 0; i < 10000 && !(*pump)->finished(); ++i) usleep(1000);
  CHECK((*pump)->finished());
  pump->reset();
  close(p[0]);
}

TEST_CASE("input pump: more input than the UART holds waits instead of overrunning") {
  int p[2];
  REQUIRE(pipe(p) == 0);
  Serial16550 uart(std::make_shared<StringSink>(), nullptr);
  auto pump = InputPump::Start(p[0], &uart);
  REQUIRE(pump.ok());
  std::string big;
  for (size_t i = 0; i < Serial16550::kInputCapacity + 3000; ++i) big.push_back('a' + i % 26);
  size_t written = 0;
  std::string got;
  // Interleave writing (the pipe holds 64 KiB, so this never blocks) and draining.
  REQUIRE(write(p[1], big.data(), big.size()) == static_cast<ssize_t>(big.size()));
  written = big.size();
  got = Drain(uart, written);
  CHECK(got == big);
  uint8_t lsr = 0;
  uart.Read(5, absl::MakeSpan(&lsr, 1));
  CHECK((lsr & 0x02) == 0);  // no overrun
  pump->reset();             // stops the thread while the pipe is still open
  close(p[1]);
  close(p[0]);
}

}  // namespace
}  // namespace amalgam::vmm::devices
