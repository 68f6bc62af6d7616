#include "vcpu/bus.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace amalgam::vcpu {
namespace {

class Reg : public BusDevice {
 public:
  void Read(uint64_t offset, absl::Span<uint8_t> data) override {
    absl::MutexLock l(&mu);
    for (auto& b : data) b = static_cast<uint8_t>(offset);
    ++reads;
  }
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override {
    absl::MutexLock l(&mu);
    last_offset = offset;
    last = std::vector<uint8_t>(data.begin(), data.end());
    ++writes;
  }
  absl::Mutex mu;
  uint64_t last_offset = 0;
  std::vector<uint8_t> last;
  int reads = 0, writes = 0;
};

TEST_CASE("bus routes by range with offsets relative to the base") {
  Bus bus;
  auto a = std::make_shared<Reg>();
  auto b = std::make_shared<Reg>();
  REQUIRE(bus.Insert(a, 0x3f8, 8).ok());
  REQUIRE(bus.Insert(b, 0x400, 1).ok());
  uint8_t v[2] = {1, 2};
  CHECK(bus.Write(0x3fa, v));
  CHECK(a->last_offset == 2);
  CHECK(a->last == std::vector<uint8_t>{1, 2});
  uint8_t r[4];
  CHECK(bus.Read(0x3ff, absl::MakeSpan(r, 4)));
  CHECK(r[0] == 7);
  CHECK(bus.Read(0x400, absl::MakeSpan(r, 1)));
  CHECK(b->reads == 1);
  // Edges: one before, one past.
  CHECK_FALSE(bus.Read(0x3f7, absl::MakeSpan(r, 1)));
  CHECK(r[0] == 0xff);
  CHECK_FALSE(bus.Write(0x401, v));
  CHECK_FALSE(bus.Read(0, absl::MakeSpan(r, 1)));
}

TEST_CASE("bus rejects overlaps, empty and wrapping ranges; Remove works") {
  Bus bus;
  auto d = std::make_shared<Reg>();
  REQUIRE(bus.Insert(d, 0x100, 0x10).ok());
  CHECK(bus.Insert(d, 0x10f, 1).code() == absl::StatusCode::kAlreadyExists);
  CHECK(bus.Insert(d, 0xf0, 0x11).code() == absl::StatusCode::kAlreadyExists);
  CHECK(bus.Insert(d, 0x0, 0x1000).code() == absl::StatusCode::kAlreadyExists);
  CHECK(bus.Insert(d, 0x110, 1).ok());  // adjacent
  CHECK(bus.Insert(d, 0xff, 1).ok());   // adjacent below
  CHECK(bus.Insert(d, 0x200, 0).code() == absl::StatusCode::kInvalidArgument);
  CHECK(bus.Insert(d, UINT64_MAX, 2).code() == absl::StatusCode::kInvalidArgument);
  CHECK(bus.Insert(nullptr, 0x300, 1).code() == absl::StatusCode::kInvalidArgument);
  REQUIRE(bus.Remove(0x100).ok());
  CHECK(bus.Remove(0x100).code() == absl::StatusCode::kNotFound);
  uint8_t r;
  CHECK_FALSE(bus.Read(0x105, absl::MakeSpan(&r, 1)));
}

TEST_CASE("bus dispatch is safe against concurrent insert/remove") {
  Bus bus;
  auto d = std::make_shared<Reg>();
  REQUIRE(bus.Insert(d, 0x10, 1).ok());
  // Catch2 assertions are not thread-safe: the churn thread only counts failures.
  std::atomic<int> churn_errors{0};
  std::thread churn([&] {
    for (int i = 0; i < 2000; ++i) {
      auto tmp = std::make_shared<Reg>();
      if (!bus.Insert(tmp, 0x20, 1).ok()) ++churn_errors;
      if (!bus.Remove(0x20).ok()) ++churn_errors;
    }
  });
  uint8_t v = 1;
  for (int i = 0; i < 2000; ++i) {
    CHECK(bus.Write(0x10, absl::MakeConstSpan(&v, 1)));
    bus.Write(0x20, absl::MakeConstSpan(&v, 1));
  }
  churn.join();
  CHECK(churn_errors == 0);
  CHECK(d->writes == 2000);
}

}  // namespace
}  // namespace amalgam::vcpu
