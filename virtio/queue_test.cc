#include "virtio/queue.h"

#include <catch2/catch.hpp>

#include "virtio/chain_io.h"
#include "virtio/testing/test_driver.h"
#include "virtio/virtio_ids.h"

namespace amalgam::virtio {
namespace {

using testing::Seg;
using testing::TestDriver;

constexpr uint64_t kRamBytes = 1 << 20;
constexpr uint64_t kRings = 0x1000;
constexpr uint64_t kData = 0x10000;

std::unique_ptr<GuestMemory> MakeMemory() {
  return GuestMemory::Create({{GuestAddress(0), kRamBytes}}).value();
}

struct Fixture {
  std::unique_ptr<GuestMemory> mem = MakeMemory();
  TestDriver drv{*mem, kRings, 8};
  Queue q{16};
  Fixture() {
    drv.Configure(q);
    REQUIRE(q.Validate(*mem).ok());
  }
};

TEST_CASE("a well-formed chain pops with readable then writable buffers") {
  Fixture f;
  uint16_t head =
      f.drv.AddChain({{kData, 16, false}, {kData + 16, 100, false}, {kData + 200, 8, true}});
  auto chain = f.q.Pop(*f.mem);
  REQUIRE(chain.ok());
  REQUIRE(chain->has_value());
  CHECK((*chain)->head == head);
  CHECK((*chain)->readable.size() == 2);
  CHECK((*chain)->readable_bytes == 116);
  CHECK((*chain)->writable.size() == 1);
  CHECK((*chain)->writable[0].addr.value() == kData + 200);
  // Nothing more posted.
  auto none = f.q.Pop(*f.mem);
  REQUIRE(none.ok());
  CHECK(!none->has_value());
}

TEST_CASE("used ring gets id and length, and the index advances") {
  Fixture f;
  uint16_t head = f.drv.AddChain({{kData, 4, true}});
  auto chain = f.q.Pop(*f.mem);
  REQUIRE(chain.ok());
  REQUIRE(f.q.AddUsed(*f.mem, (*chain)->head, 4).ok());
  CHECK(f.drv.UsedIdx() == 1);
  CHECK(f.drv.UsedElem(0) == std::make_pair(uint32_t{head}, uint32_t{4}));
  CHECK(f.q.NeedsInterrupt(*f.mem).value());
  // A second ask without new used entries needs no interrupt.
  CHECK(!f.q.NeedsInterrupt(*f.mem).value());
}

TEST_CASE("NO_INTERRUPT suppresses interrupts without EVENT_IDX") {
  Fixture f;
  f.drv.SetAvailFlags(kAvailFlagNoInterrupt);
  f.drv.AddChain({{kData, 4, true}});
  auto chain = f.q.Pop(*f.mem);
  REQUIRE(f.q.AddUsed(*f.mem, (*chain)->head, 0).ok());
  CHECK(!f.q.NeedsInterrupt(*f.mem).value());
}

TEST_CASE("EVENT_IDX: interrupt only when used_event is crossed; avail_event is published") {
  Fixture f;
  f.q.set_event_idx(true);
  f.drv.SetUsedEvent(1);  // driver wants an interrupt once the second entry is used
  for (int i = 0; i < 3; ++i) f.drv.AddChain({{kData, 4, true}});
  auto c0 = f.q.Pop(*f.mem);
  REQUIRE(f.q.AddUsed(*f.mem, (*c0)->head, 0).ok());
  CHECK(!f.q.NeedsInterrupt(*f.mem).value());  // used idx 1: event 1 not crossed yet
  auto c1 = f.q.Pop(*f.mem);
  REQUIRE(f.q.AddUsed(*f.mem, (*c1)->head, 0).ok());
  CHECK(f.q.NeedsInterrupt(*f.mem).value());  // used idx 2 crosses event 1
  auto c2 = f.q.Pop(*f.mem);
  REQUIRE(f.q.AddUsed(*f.mem, (*c2)->head, 0).ok());
  CHECK(!f.q.NeedsInterrupt(*f.mem).value());  // event 1 already passed
  REQUIRE(f.q.RequestNotification(*f.mem).ok());
  CHECK(f.drv.AvailEvent() == 3);
}

TEST_CASE("indirect descriptors are followed when negotiated") {
  Fixture f;
  f.q.set_indirect(true);
  const uint64_t table = 0x8000;
  f.drv.SetDescAt(table, 0, kData, 10, kDescFlagNext, 1);
  f.drv.SetDescAt(table, 1, kData + 64, 20, kDescFlagWrite, 0);
  f.drv.SetDesc(0, table, 32, kDescFlagIndirect, 0);
  f.drv.Post(0);
  auto chain = f.q.Pop(*f.mem);
  REQUIRE(chain.ok());
  CHECK((*chain)->readable_bytes == 10);
  CHECK((*chain)->writable_bytes == 20);
}

// Every hostile case below must come back as an error Status, never a crash or a hang.
absl::Status PopError(Fixture& f) {
  auto r = f.q.Pop(*f.mem);
  if (r.ok()) return absl::OkStatus();
  return r.status();
}

TEST_CASE("hostile: descriptor loop") {
  Fixture f;
  f.drv.SetDesc(0, kData, 4, kDescFlagNext, 1);
  f.drv.SetDesc(1, kData, 4, kDescFlagNext, 0);
  f.drv.Post(0);
  absl::Status s = PopError(f);
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(s.message().find("loop") != std::string::npos);
}

TEST_CASE("hostile: self loop inside an indirect table") {
  Fixture f;
  f.q.set_indirect(true);
  const uint64_t table = 0x8000;
  f.drv.SetDescAt(table, 0, kData, 4, kDescFlagNext, 0);
  f.drv.SetDesc(0, table, 16, kDescFlagIndirect, 0);
  f.drv.Post(0);
  CHECK(PopError(f).code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("hostile: chain longer than the queue (next index out of the table)") {
  Fixture f;
  f.drv.SetDesc(0, kData, 4, kDescFlagNext, 8);  // size is 8: index 8 does not exist
  f.drv.Post(0);
  CHECK(PopError(f).code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("hostile: head index outside the queue") {
  Fixture f;
  f.drv.Post(9);
  CHECK(PopError(f).code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("hostile: buffer address outside guest RAM") {
  Fixture f;
  f.drv.SetDesc(0, kRamBytes - 2, 4, 0, 0);
  f.drv.Post(0);
  CHECK(PopError(f).code() == absl::StatusCode::kOutOfRange);
}

TEST_CASE("hostile: address + length wraps past 2^64") {
  Fixture f;
  f.drv.SetDesc(0, ~uint64_t{0} - 1, 0x100, 0, 0);
  f.drv.Post(0);
  CHECK(PopError(f).code() == absl::StatusCode::kOutOfRange);
}

TEST_CASE("hostile: total chain length overflows 32 bits") {
  // Needs buffers whose sum exceeds 4 GiB: use a sparse 8 GiB guest (memfd, costs nothing).
  auto mem = GuestMemory::Create({{GuestAddress(0), 8ull << 30}}).value();
  TestDriver drv(*mem, kRings, 8);
  Queue q(8);
  drv.Configure(q);
  REQUIRE(q.Validate(*mem).ok());
  drv.SetDesc(0, 1ull << 30, 0xF0000000u, kDescFlagNext, 1);
  drv.SetDesc(1, 5ull << 30, 0x20000000u, 0, 0);
  drv.Post(0);
  auto r = q.Pop(*mem);
  REQUIRE(!r.ok());
  CHECK(r.status().message().find("overflows") != std::string::npos);
}

TEST_CASE("hostile: readable descriptor after a writable one") {
  Fixture f;
  f.drv.AddChain({{kData, 4, true}, {kData + 8, 4, false}});
  CHECK(PopError(f).code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("hostile: write into a read-only descriptor is refused by the writer") {
  Fixture f;
  f.drv.AddChain({{kData, 16, false}});
  auto chain = f.q.Pop(*f.mem);
  REQUIRE(chain.ok());
  ChainWriter w(*f.mem, **chain);
  uint8_t status = 0;
  CHECK(w.Write(absl::MakeConstSpan(&status, 1)).code() == absl::StatusCode::kOutOfRange);
  CHECK(f.mem->ReadObj<uint8_t>(GuestAddress(kData)).value() == 0);
}

TEST_CASE("hostile: nested indirect, indirect without the feature, bad indirect length") {
  Fixture f;
  const uint64_t table = 0x8000;
  f.drv.SetDesc(0, table, 16, kDescFlagIndirect, 0);
  f.drv.Post(0);
  CHECK(PopError(f).code() == absl::StatusCode::kInvalidArgument);  // not negotiated

  Fixture g;
  g.q.set_indirect(true);
  g.drv.SetDescAt(table, 0, table, 16, kDescFlagIndirect, 0);
  g.drv.SetDesc(0, table, 16, kDescFlagIndirect, 0);
  g.drv.Post(0);
  CHECK(PopError(g).message().find("inside an indirect") != std::string::npos);

  Fixture h;
  h.q.set_indirect(true);
  h.drv.SetDesc(0, table, 17, kDescFlagIndirect, 0);
  h.drv.Post(0);
  CHECK(PopError(h).code() == absl::StatusCode::kInvalidArgument);

  Fixture k;
  k.q.set_indirect(true);
  k.drv.SetDesc(0, kRamBytes - 16, 32, kDescFlagIndirect, 0);
  k.drv.Post(0);
  CHECK(PopError(k).code() == absl::StatusCode::kOutOfRange);
}

TEST_CASE("hostile: an indirect table longer than the queue") {
  Fixture f;  // queue size 8
  f.q.set_indirect(true);
  const uint64_t table = 0x8000;
  for (uint16_t i = 0; i < 9; ++i) f.drv.SetDescAt(table, i, kData, 1, kDescFlagNext, i + 1);
  f.drv.SetDesc(0, table, 9 * 16, kDescFlagIndirect, 0);
  f.drv.Post(0);
  CHECK(PopError(f).message().find("longer than the queue") != std::string::npos);
}

TEST_CASE("hostile: avail index far ahead of the device") {
  Fixture f;
  f.drv.SetAvailIdx(100);
  CHECK(PopError(f).code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("hostile: rings outside memory, misaligned or bad size fail Validate") {
  auto mem = MakeMemory();
  Queue q(16);
  TestDriver drv(*mem, kRings, 8);
  drv.Configure(q);
  REQUIRE(q.Validate(*mem).ok());

  q.set_used_ring(GuestAddress(kRamBytes - 8));  // used ring pointing outside memory
  CHECK(q.Validate(*mem).code() == absl::StatusCode::kOutOfRange);
  q.set_used_ring(GuestAddress(~uint64_t{0} - 3));  // and wrapping
  CHECK(q.Validate(*mem).code() == absl::StatusCode::kOutOfRange);
  q.set_used_ring(GuestAddress(drv.used_ring() + 2));  // misaligned
  CHECK(q.Validate(*mem).code() == absl::StatusCode::kInvalidArgument);
  q.set_used_ring(GuestAddress(drv.used_ring()));
  q.set_desc_table(GuestAddress(kRamBytes));
  CHECK(q.Validate(*mem).code() == absl::StatusCode::kOutOfRange);
  q.set_desc_table(GuestAddress(drv.desc_table()));
  q.set_size(6);
  CHECK(q.Validate(*mem).code() == absl::StatusCode::kInvalidArgument);
  q.set_size(32);
  CHECK(q.Validate(*mem).code() == absl::StatusCode::kInvalidArgument);
  q.set_size(0);
  CHECK(q.Validate(*mem).code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("ChainReader spans buffers and refuses to read past the end") {
  Fixture f;
  const uint8_t bytes[6] = {1, 2, 3, 4, 5, 6};
  REQUIRE(f.mem->Write(GuestAddress(kData), absl::MakeConstSpan(bytes, 3)).ok());
  REQUIRE(f.mem->Write(GuestAddress(kData + 100), absl::MakeConstSpan(bytes + 3, 3)).ok());
  f.drv.AddChain({{kData, 3, false}, {kData + 100, 3, false}});
  auto chain = f.q.Pop(*f.mem);
  REQUIRE(chain.ok());
  ChainReader r(*f.mem, **chain);
  uint8_t out[5];
  REQUIRE(r.Read(absl::MakeSpan(out)).ok());
  CHECK(out[4] == 5);
  CHECK(r.remaining() == 1);
  CHECK(!r.Read(absl::MakeSpan(out, 2)).ok());
}

}  // namespace
}  // namespace amalgam::virtio
