#include "virtio/rng/rng_device.h"

#include <catch2/catch.hpp>

#include "virtio/testing/test_driver.h"

namespace amalgam::virtio::rng {
namespace {

TEST_CASE("rng fills the guest's writable buffers from /dev/urandom") {
  auto mem = GuestMemory::Create({{GuestAddress(0), 1 << 20}}).value();
  testing::TestDriver drv(*mem, 0x1000, 8);
  Queue q(64);
  drv.Configure(q);
  REQUIRE(q.Validate(*mem).ok());
  auto src = UrandomSource::Open();
  REQUIRE(src.ok());
  RngDevice dev(std::move(*src));
  drv.AddChain({{0x10000, 64, true}, {0x20000, 64, true}});
  REQUIRE(dev.ProcessQueue(0, *mem, q).ok());
  CHECK(drv.UsedIdx() == 1);
  CHECK(drv.UsedElem(0).second == 128);
  uint8_t a[64], b[64];
  REQUIRE(mem->Read(GuestAddress(0x10000), absl::MakeSpan(a)).ok());
  REQUIRE(mem->Read(GuestAddress(0x20000), absl::MakeSpan(b)).ok());
  // 64 random bytes are all zero with probability 2^-512, and equal halves likewise.
  CHECK(std::any_of(a, a + 64, [](uint8_t x) { return x != 0; }));
  CHECK(!std::equal(a, a + 64, b));
  CHECK(dev.bytes_served() == 128);
  CHECK(FindCounter(dev.Counters(), "requests") == 1u);
  CHECK(FindCounter(dev.Counters(), "served_bytes") == 128u);
}

TEST_CASE("rng caps a huge request and gives nothing to a read-only buffer") {
  auto mem = GuestMemory::Create({{GuestAddress(0), 1 << 20}}).value();
  testing::TestDriver drv(*mem, 0x1000, 8);
  Queue q(64);
  drv.Configure(q);
  RngDevice dev(UrandomSource::Open().value());
  drv.AddChain({{0x10000, 200000, true}});
  drv.AddChain({{0x10000, 16, false}});
  REQUIRE(dev.ProcessQueue(0, *mem, q).ok());
  CHECK(drv.UsedElem(0).second == kMaxBytesPerRequest);
  CHECK(drv.UsedElem(1).second == 0);
}

TEST_CASE("missing entropy source is a clear error") {
  auto s = UrandomSource::Open("/nonexistent/urandom");
  CHECK(s.status().code() == absl::StatusCode::kUnavailable);
  CHECK(std::string(s.status().message()).find("/nonexistent/urandom") != std::string::npos);
}

}  // namespace
}  // namespace amalgam::virtio::rng
