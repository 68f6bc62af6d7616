#include "vmm/devices/serial.h"

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <memory>
#include <string>

#include "vcpu/bus.h"
#include "vmm/devices/test_util.h"

namespace amalgam::vmm::devices {
namespace {

constexpr uint64_t kBase = Serial16550::kCom1Port;

struct Fixture {
  std::shared_ptr<StringSink> sink = std::make_shared<StringSink>();
  std::shared_ptr<RecordingIrq> irq = std::make_shared<RecordingIrq>();
  std::shared_ptr<Serial16550> uart = std::make_shared<Serial16550>(sink, irq);
  vcpu::Bus bus;

  Fixture() { REQUIRE(bus.Insert(uart, kBase, Serial16550::kRegisterCount).ok()); }
  uint8_t In(uint64_t reg) {
    uint8_t v = 0;
    REQUIRE(bus.Read(kBase + reg, absl::MakeSpan(&v, 1)));
    return v;
  }
  void Out(uint64_t reg, uint8_t v) { REQUIRE(bus.Write(kBase + reg, absl::MakeConstSpan(&v, 1))); }
};

TEST_CASE("serial: THR bytes reach the sink in order, LSR reports an idle transmitter") {
  Fixture f;
  for (char c : std::string("hello\n")) f.Out(0, static_cast<uint8_t>(c));
  CHECK(f.sink->str() == "hello\n");
  CHECK((f.In(5) & 0x60) == 0x60);  // THRE | TEMT
  CHECK((f.In(5) & 0x01) == 0);     // no data ready
  CHECK(f.irq->levels().empty());   // interrupts were never enabled
}

TEST_CASE("serial: DLAB switches offsets 0/1 to the divisor latch") {
  Fixture f;
  f.Out(3, 0x80);  // DLAB
  f.Out(0, 0x01);  // DLL: 115200 baud
  f.Out(1, 0x00);  // DLM
  CHECK(f.In(0) == 0x01);
  CHECK(f.In(1) == 0x00);
  f.Out(3, 0x03);  // 8N1, DLAB off
  CHECK(f.In(3) == 0x03);
  CHECK(f.sink->str().empty());  // the divisor write was not transmitted
  f.Out(0, 'x');
  CHECK(f.sink->str() == "x");
  CHECK(f.In(1) == 0);  // IER, untouched by the DLM write
}

TEST_CASE("serial: IER keeps its low nibble and SCR is a scratch register (Linux probe)") {
  Fixture f;
  f.Out(1, 0x00);
  CHECK((f.In(1) & 0x0f) == 0);
  f.Out(1, 0xff);
  CHECK(f.In(1) == 0x0f);
  f.Out(7, 0xa5);
  CHECK(f.In(7) == 0xa5);
}

TEST_CASE("serial: loopback routes MCR to MSR and THR to RBR") {
  Fixture f;
  f.Out(4, 0x10 | 0x0a);            // LOOP | RTS | OUT2
  CHECK((f.In(6) & 0xf0) == 0x90);  // CTS | DCD
  f.Out(4, 0x10 | 0x05);            // LOOP | DTR | OUT1
  CHECK((f.In(6) & 0xf0) == 0x60);  // DSR | RI
  f.Out(0, 'Q');
  CHECK(f.sink->str().empty());
  CHECK((f.In(5) & 0x01) == 1);
  CHECK(f.In(0) == 'Q');
  CHECK((f.In(5) & 0x01) == 0);
  f.Out(4, 0x0b);                   // loopback off
  CHECK((f.In(6) & 0xb0) == 0xb0);  // DCD | DSR | CTS: a terminal is attached
}

TEST_CASE("serial: received data sets DR and raises IRQ when enabled") {
  Fixture f;
  const uint8_t in[] = {'a', 'b'};
  REQUIRE(f.uart->EnqueueInput(in) == 2);
  CHECK(f.irq->levels().empty());  // IER still 0
  CHECK((f.In(5) & 0x01) == 1);
  CHECK((f.In(2) & 0x0f) == 0x01);  // no interrupt pending
  f.Out(1, 0x01);                   // ERBFI
  CHECK(f.irq->level());
  CHECK((f.In(2) & 0x0f) == 0x04);  // received data available
  CHECK(f.In(0) == 'a');
  CHECK(f.irq->level());
  CHECK(f.In(0) == 'b');
  CHECK_FALSE(f.irq->level());
  CHECK((f.In(2) & 0x0f) == 0x01);
  CHECK(f.In(0) == 0);  // empty RBR reads 0
}

TEST_CASE("serial: THR-empty interrupt fires on enable and after each byte, cleared by IIR") {
  Fixture f;
  f.Out(1, 0x02);  // ETBEI
  CHECK(f.irq->level());
  CHECK((f.In(2) & 0x0f) == 0x02);
  CHECK_FALSE(f.irq->level());  // reading IIR acknowledged it
  CHECK((f.In(2) & 0x0f) == 0x01);
  f.Out(0, 'z');
  CHECK(f.irq->level());
  f.Out(1, 0x00);
  CHECK_FALSE(f.irq->level());
  CHECK(f.irq->levels() == std::vector<bool>{true, false, true, false});
}

TEST_CASE("serial: FIFO enable shows in IIR, FCR clears the receive queue") {
  Fixture f;
  f.Out(2, 0x01);
  CHECK((f.In(2) & 0xc0) == 0xc0);
  const uint8_t in[] = {'x'};
  f.uart->EnqueueInput(in);
  f.Out(2, 0x03);  // enable + clear RX
  CHECK((f.In(5) & 0x01) == 0);
}

TEST_CASE("serial: input overflow is bounded and reported as an overrun") {
  Fixture f;
  std::string big(Serial16550::kInputCapacity + 10, 'k');
  size_t n = f.uart->EnqueueInput(
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(big.data()), big.size()));
  CHECK(n == Serial16550::kInputCapacity);
  f.Out(1, 0x04);  // ELSI
  CHECK((f.In(2) & 0x0f) == 0x06);
  uint8_t lsr = f.In(5);
  CHECK((lsr & 0x02) == 0x02);
  CHECK((f.In(5) & 0x02) == 0);  // cleared by the read
  CHECK_FALSE(f.irq->level());
}

TEST_CASE("serial: odd offsets and widths never crash") {
  Fixture f;
  uint8_t wide[4] = {1, 2, 3, 4};
  f.uart->Write(9, wide);  // out of range: ignored
  f.uart->Read(100, absl::MakeSpan(wide));
  CHECK(wide[0] == 0xff);
  const uint8_t word[2] = {1, 2};
  f.uart->Write(0, word);  // 16-bit write: the low byte is transmitted
  CHECK(f.sink->str() == std::string(1, '\x01'));
  f.uart->Read(0, absl::Span<uint8_t>());
}

TEST_CASE("serial: FdSink writes to a real file") {
  std::string dir = std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp";
  std::string path = dir + "/serial_sink_test.txt";
  {
    auto sink = FdSink::OpenFile(path);
    REQUIRE(sink.ok());
    Serial16550 uart(std::shared_ptr<ByteSink>(std::move(*sink)), nullptr);
    for (char c : std::string("file!")) {
      uint8_t b = static_cast<uint8_t>(c);
      uart.Write(0, absl::MakeConstSpan(&b, 1));
    }
  }
  int fd = ::open(path.c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  char buf[16] = {};
  CHECK(::read(fd, buf, sizeof(buf)) == 5);
  ::close(fd);
  CHECK(std::string(buf) == "file!");
  auto bad = FdSink::OpenFile("/nonexistent-dir/x");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("/nonexistent-dir/x") != std::string::npos);
}

}  // namespace
}  // namespace amalgam::vmm::devices
