#include "memory/dirty_bitmap.h"

#include <catch2/catch.hpp>
#include <thread>

#include "memory/guest_address.h"

namespace amalgam::memory {
namespace {

TEST_CASE("MarkRange marks exactly the touched pages") {
  DirtyBitmap bm(100);
  CHECK(bm.num_words() == 2);
  bm.MarkRange(kPageSize - 1, 2);           // pages 0 and 1
  bm.MarkRange(10 * kPageSize, kPageSize);  // page 10 only
  bm.MarkRange(20 * kPageSize, 0);          // nothing
  CHECK(bm.DirtyPages() == std::vector<uint64_t>{0, 1, 10});
  bm.MarkRange(99 * kPageSize, UINT64_MAX);  // saturates, stays in range
  CHECK(bm.IsDirty(99));
  CHECK(bm.CountDirty() == 4);
  bm.MarkPage(100);  // out of range: ignored
  bm.MarkRange(1000 * kPageSize, 5);
  CHECK(bm.CountDirty() == 4);
  CHECK_FALSE(bm.IsDirty(100));
}

TEST_CASE("Absorb ORs KVM words, masks bits past the end, checks the size") {
  DirtyBitmap bm(70);
  bm.MarkPage(3);
  REQUIRE(bm.Absorb({0x10, ~0ull}).ok());  // page 4; word 1 has pages 64..69 valid only
  CHECK(bm.CountDirty() == 2 + 6);
  CHECK(bm.IsDirty(3));
  CHECK(bm.IsDirty(4));
  CHECK(bm.IsDirty(69));
  CHECK_FALSE(bm.IsDirty(70));
  CHECK(bm.Absorb({0x1}).code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("TakeWords hands each dirty bit out once") {
  DirtyBitmap bm(128);
  bm.MarkPage(0);
  bm.MarkPage(127);
  auto words = bm.TakeWords();
  REQUIRE(words.size() == 2);
  CHECK(words[0] == 1);
  CHECK(words[1] == (1ull << 63));
  CHECK(bm.CountDirty() == 0);
  CHECK(bm.TakeWords() == std::vector<uint64_t>{0, 0});
}

TEST_CASE("concurrent markers and a taker lose no bit") {
  DirtyBitmap bm(4096);
  std::vector<uint64_t> taken(bm.num_words(), 0);
  std::thread a([&] {
    for (uint64_t p = 0; p < 4096; p += 2) bm.MarkPage(p);
  });
  std::thread b([&] {
    for (uint64_t p = 1; p < 4096; p += 2) bm.MarkPage(p);
  });
  for (int i = 0; i < 50; ++i) {
    auto w = bm.TakeWords();
    for (size_t j = 0; j < w.size(); ++j) taken[j] |= w[j];
  }
  a.join();
  b.join();
  auto w = bm.TakeWords();
  for (size_t j = 0; j < w.size(); ++j) taken[j] |= w[j];
  for (uint64_t word : taken) CHECK(word == ~0ull);
}

}  // namespace
}  // namespace amalgam::memory
