#include "virtio/console/console_device.h"

#include <catch2/catch.hpp>
#include <string>

#include "virtio/mmio.h"
#include "virtio/testing/test_driver.h"

namespace amalgam::virtio::console {
namespace {

class StringSink : public ConsoleSink {
 public:
  void Write(absl::Span<const uint8_t> b) override { out.append(b.begin(), b.end()); }
  std::string out;
};

struct Fixture {
  std::unique_ptr<GuestMemory> mem = GuestMemory::Create({{GuestAddress(0), 1 << 20}}).value();
  std::shared_ptr<StringSink> sink = std::make_shared<StringSink>();
  ConsoleDevice dev{sink};
  testing::TestDriver rx{*mem, 0x1000, 8};
  testing::TestDriver tx{*mem, 0x3000, 8};
  Queue rxq{64}, txq{64};
  Fixture() {
    rx.Configure(rxq);
    tx.Configure(txq);
  }
};

TEST_CASE("transmitted bytes reach the sink, across descriptors") {
  Fixture f;
  const std::string a = "hello ", b = "console\n";
  REQUIRE(f.mem
              ->Write(GuestAddress(0x10000),
                      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(a.data()), a.size()))
              .ok());
  REQUIRE(f.mem
              ->Write(GuestAddress(0x20000),
                      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(b.data()), b.size()))
              .ok());
  f.tx.AddChain({{0x10000, 6, false}, {0x20000, 8, false}});
  REQUIRE(f.dev.ProcessQueue(1, *f.mem, f.txq).ok());
  CHECK(f.sink->out == "hello console\n");
  CHECK(f.tx.UsedIdx() == 1);
  CHECK(f.dev.bytes_out() == 14);
  CHECK(FindCounter(f.dev.Counters(), "output_bytes") == 14u);
}

TEST_CASE("input waits for a guest buffer and is delivered in order") {
  Fixture f;
  const std::string in = "abcdef";
  CHECK(f.dev.QueueInput(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(in.data()), 6)) == 6);
  REQUIRE(f.dev.ProcessQueue(0, *f.mem, f.rxq).ok());  // no buffer yet: nothing happens
  CHECK(f.rx.UsedIdx() == 0);
  f.rx.AddChain({{0x10000, 4, true}});
  f.rx.AddChain({{0x10100, 4, true}});
  REQUIRE(f.dev.ProcessQueue(0, *f.mem, f.rxq).ok());
  CHECK(f.rx.UsedIdx() == 2);
  CHECK(f.rx.UsedElem(0).second == 4);
  CHECK(f.rx.UsedElem(1).second == 2);
  char got[7] = {};
  REQUIRE(
      f.mem->Read(GuestAddress(0x10000), absl::MakeSpan(reinterpret_cast<uint8_t*>(got), 4)).ok());
  REQUIRE(f.mem->Read(GuestAddress(0x10100), absl::MakeSpan(reinterpret_cast<uint8_t*>(got + 4), 2))
              .ok());
  CHECK(std::string(got) == "abcdef");
  CHECK(FindCounter(f.dev.Counters(), "input_bytes") == 6u);
  CHECK(FindCounter(f.dev.Counters(), "input_dropped_bytes") == 0u);
}

TEST_CASE("a hostile transmit chain (out-of-range buffer) is an error, sink untouched") {
  Fixture f;
  f.tx.AddChain({{(1 << 20) - 2, 16, false}});
  CHECK(!f.dev.ProcessQueue(1, *f.mem, f.txq).ok());
  CHECK(f.sink->out.empty());
}

}  // namespace
}  // namespace amalgam::virtio::console
