#include "memory/guest_memory.h"

#include <sys/mman.h>

#include <catch2/catch.hpp>
#include <cstring>

#include "memory/test_memory.h"

namespace amalgam::memory {
namespace {

constexpr uint64_t kGiB = 1ull << 30;
constexpr uint64_t kMiB = 1ull << 20;

std::unique_ptr<GuestMemory> Make(std::vector<RegionSpec> specs) {
  return testing::MakeMemory(std::move(specs));
}

TEST_CASE("X86Layout splits RAM around the 3-4 GiB hole") {
  auto small = GuestMemory::X86Layout(512 * kMiB);
  REQUIRE(small.size() == 1);
  CHECK(small[0].start.value() == 0);
  CHECK(small[0].size == 512 * kMiB);

  auto exact = GuestMemory::X86Layout(3 * kGiB);
  REQUIRE(exact.size() == 1);
  CHECK(exact[0].size == 3 * kGiB);

  auto big = GuestMemory::X86Layout(6 * kGiB);
  REQUIRE(big.size() == 2);
  CHECK(big[0].start.value() == 0);
  CHECK(big[0].size == 3 * kGiB);
  CHECK(big[1].start.value() == 4 * kGiB);
  CHECK(big[1].size == 3 * kGiB);

  CHECK(GuestMemory::X86Layout(0).empty());
}

TEST_CASE("a 6 GiB x86 guest is created lazily and the hole is not RAM") {
  auto mem = Make(GuestMemory::X86Layout(6 * kGiB));
  CHECK(mem->total_size() == 6 * kGiB);
  REQUIRE(mem->regions().size() == 2);
  CHECK(mem->FindRegion(GuestAddress(3 * kGiB - 1)) == &mem->regions()[0]);
  CHECK(mem->FindRegion(GuestAddress(3 * kGiB)) == nullptr);
  CHECK(mem->FindRegion(GuestAddress(4 * kGiB - 1)) == nullptr);
  CHECK(mem->FindRegion(GuestAddress(4 * kGiB)) == &mem->regions()[1]);
  CHECK(mem->FindRegion(GuestAddress(7 * kGiB - 1)) == &mem->regions()[1]);
  CHECK(mem->FindRegion(GuestAddress(7 * kGiB)) == nullptr);
  // Both sides of the hole are usable.
  REQUIRE(mem->WriteObj<uint64_t>(GuestAddress(3 * kGiB - 8), 0x1122334455667788).ok());
  REQUIRE(mem->WriteObj<uint64_t>(GuestAddress(4 * kGiB), 0x99).ok());
  CHECK(*mem->ReadObj<uint64_t>(GuestAddress(3 * kGiB - 8)) == 0x1122334455667788);
  CHECK(*mem->ReadObj<uint64_t>(GuestAddress(4 * kGiB)) == 0x99);
}

TEST_CASE("bad layouts are rejected with INVALID_ARGUMENT") {
  using C = absl::StatusCode;
  CHECK(GuestMemory::Create({}).status().code() == C::kInvalidArgument);
  CHECK(GuestMemory::Create({{GuestAddress(0), 0}}).status().code() == C::kInvalidArgument);
  CHECK(GuestMemory::Create({{GuestAddress(0x800), 0x1000}}).status().code() ==
        C::kInvalidArgument);
  CHECK(GuestMemory::Create({{GuestAddress(0), 0x1800}}).status().code() == C::kInvalidArgument);
  auto overlap = GuestMemory::Create({{GuestAddress(0x10000), 0x2000}, {GuestAddress(0), 0x11000}});
  CHECK(overlap.status().code() == C::kInvalidArgument);
  CHECK(overlap.status().message().find("overlap") != absl::string_view::npos);
  // Ends exactly at 2^64: the end address would wrap.
  CHECK(GuestMemory::Create({{GuestAddress(UINT64_MAX - 0xfff), 0x1000}}).status().code() ==
        C::kInvalidArgument);
  // Adjacent is fine.
  CHECK(GuestMemory::Create({{GuestAddress(0), 0x1000}, {GuestAddress(0x1000), 0x1000}}).ok());
}

TEST_CASE("more RAM than the host can map is RESOURCE_EXHAUSTED with a clear message") {
  // 2^62 bytes: the memfd can be sized sparsely, but no x86-64 address space can map it.
  auto mem = GuestMemory::Create({{GuestAddress(0), 1ull << 62}});
  REQUIRE_FALSE(mem.ok());
  CHECK(mem.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(mem.status().message().find("guest RAM") != absl::string_view::npos);
}

TEST_CASE("bounds: last byte, one past, wrap-around, spanning a hole") {
  // Region A [0x10000, 0x12000), hole, region B [0x20000, 0x21000), then C adjacent to B.
  auto mem = Make({{GuestAddress(0x10000), 0x2000},
                   {GuestAddress(0x20000), 0x1000},
                   {GuestAddress(0x21000), 0x1000}});
  uint8_t buf[16] = {};
  auto span = [&](size_t n) { return absl::MakeSpan(buf, n); };
  using C = absl::StatusCode;

  // Last byte of A is fine; one past is not.
  CHECK(mem->Read(GuestAddress(0x11fff), span(1)).ok());
  CHECK(mem->Read(GuestAddress(0x12000), span(1)).code() == C::kOutOfRange);
  CHECK(mem->Read(GuestAddress(0x11ff8), span(8)).ok());
  CHECK(mem->Read(GuestAddress(0x11ff9), span(8)).code() == C::kOutOfRange);
  CHECK(mem->IsValidRange(GuestAddress(0x10000), 0x2000));
  CHECK_FALSE(mem->IsValidRange(GuestAddress(0x10000), 0x2001));
  CHECK(mem->IsValidRange(GuestAddress(0x11fff), 0));
  CHECK_FALSE(mem->IsValidRange(GuestAddress(0x12000), 0));
  CHECK(mem->GetHostAddress(GuestAddress(0x11fff), 1).ok());
  CHECK(mem->GetHostAddress(GuestAddress(0x11fff), 2).status().code() == C::kOutOfRange);
  CHECK(mem->GetHostAddress(GuestAddress(0x0), 1).status().code() == C::kOutOfRange);

  // Before the first region, in the hole.
  CHECK(mem->Read(GuestAddress(0xffff), span(1)).code() == C::kOutOfRange);
  CHECK(mem->Read(GuestAddress(0x15000), span(1)).code() == C::kOutOfRange);

  // Wrap-around: addr + len overflows 2^64 (would alias low memory if unchecked).
  CHECK(mem->Read(GuestAddress(UINT64_MAX), span(2)).code() == C::kOutOfRange);
  CHECK(mem->Read(GuestAddress(UINT64_MAX - 7), span(16)).code() == C::kOutOfRange);
  CHECK_FALSE(mem->IsValidRange(GuestAddress(0x10000), UINT64_MAX));
  CHECK(mem->GetHostAddress(GuestAddress(0x10000), UINT64_MAX).status().code() == C::kOutOfRange);
  CHECK(mem->GetHostAddress(GuestAddress(0x10001), UINT64_MAX).status().code() == C::kOutOfRange);
  CHECK(mem->MarkDirty(GuestAddress(0x10000), UINT64_MAX).code() == C::kOutOfRange);

  // Spanning the hole fails and copies nothing.
  std::memset(mem->regions()[0].host_address() + 0x1ffc, 0xaa, 4);
  uint8_t data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  CHECK(mem->Write(GuestAddress(0x11ffc), absl::MakeConstSpan(data, 8)).code() == C::kOutOfRange);
  CHECK(mem->regions()[0].host_address()[0x1ffc] == 0xaa);
  CHECK(mem->dirty_bitmap(0).CountDirty() == 0);

  // Spanning two contiguous regions (B, C) works for Read/Write but not for one host pointer.
  REQUIRE(mem->Write(GuestAddress(0x20ffc), absl::MakeConstSpan(data, 8)).ok());
  CHECK(mem->regions()[1].host_address()[0xffc] == 1);
  CHECK(mem->regions()[2].host_address()[0x3] == 8);
  REQUIRE(mem->Read(GuestAddress(0x20ffc), span(8)).ok());
  CHECK(std::memcmp(buf, data, 8) == 0);
  CHECK(mem->GetHostAddress(GuestAddress(0x20ffc), 8).status().code() == C::kOutOfRange);
  CHECK(mem->dirty_bitmap(1).IsDirty(0));
  CHECK(mem->dirty_bitmap(2).IsDirty(0));

  // Zero-length access: valid inside RAM, an error outside.
  CHECK(mem->Read(GuestAddress(0x20000), span(0)).ok());
  CHECK(mem->Read(GuestAddress(0x30000), span(0)).code() == C::kOutOfRange);
}

TEST_CASE("ReadObj/WriteObj round-trip and GPA->HVA translation") {
  auto mem = Make({{GuestAddress(0x100000), 0x4000}});
  struct Pod {
    uint32_t a;
    uint16_t b;
    uint8_t c[2];
  };
  REQUIRE(mem->WriteObj(GuestAddress(0x101002), Pod{7, 8, {9, 10}}).ok());
  auto back = mem->ReadObj<Pod>(GuestAddress(0x101002));
  REQUIRE(back.ok());
  CHECK(back->a == 7);
  CHECK(back->c[1] == 10);
  auto hva = mem->GetHostAddress(GuestAddress(0x101002), sizeof(Pod));
  REQUIRE(hva.ok());
  CHECK(*hva == mem->regions()[0].host_address() + 0x1002);
  uint32_t a;
  std::memcpy(&a, *hva, 4);
  CHECK(a == 7);
  CHECK(mem->ReadObj<uint64_t>(GuestAddress(0x103ffc)).status().code() ==
        absl::StatusCode::kOutOfRange);
}

TEST_CASE("memfd backing: a second mapping of the memfd sees guest writes, and vice versa") {
  auto mem = Make({{GuestAddress(0), 0x2000}, {GuestAddress(0x100000), 0x3000}});
  const GuestRegion& r1 = mem->regions()[1];
  CHECK(r1.memfd() >= 0);
  CHECK(r1.memfd() == mem->regions()[0].memfd());
  CHECK(r1.memfd_offset() == 0x2000);
  REQUIRE(mem->WriteObj<uint64_t>(GuestAddress(0x101008), 0xfeedfacecafebeef).ok());

  void* alias = mmap(nullptr, r1.size(), PROT_READ | PROT_WRITE, MAP_SHARED, r1.memfd(),
                     static_cast<off_t>(r1.memfd_offset()));
  REQUIRE(alias != MAP_FAILED);
  uint64_t v;
  std::memcpy(&v, static_cast<uint8_t*>(alias) + 0x1008, 8);
  CHECK(v == 0xfeedfacecafebeef);
  uint64_t w = 0x0123456789abcdef;
  std::memcpy(static_cast<uint8_t*>(alias) + 0x2000, &w, 8);
  CHECK(*mem->ReadObj<uint64_t>(GuestAddress(0x102000)) == w);
  munmap(alias, r1.size());
}

TEST_CASE("dirty tracking: Write marks pages, KVM logs are absorbed per region") {
  auto mem = Make({{GuestAddress(0), 64 * kPageSize}, {GuestAddress(0x100000), 130 * kPageSize}});
  uint8_t one = 1;
  REQUIRE(mem->Write(GuestAddress(5 * kPageSize + 17), absl::MakeConstSpan(&one, 1)).ok());
  REQUIRE(mem->MarkDirty(GuestAddress(0x100000 + 129 * kPageSize), 1).ok());
  CHECK(mem->dirty_bitmap(0).DirtyPages() == std::vector<uint64_t>{5});
  CHECK(mem->dirty_bitmap(1).DirtyPages() == std::vector<uint64_t>{129});
  // A KVM dirty log for region 1: 3 words for 130 pages.
  std::vector<uint64_t> log = {0x1, 0x8000000000000000ull, 0x2};
  REQUIRE(mem->AbsorbDirtyLog(1, log).ok());
  CHECK(mem->dirty_bitmap(1).DirtyPages() == std::vector<uint64_t>{0, 127, 129});
  CHECK(mem->AbsorbDirtyLog(1, {0x1}).code() == absl::StatusCode::kInvalidArgument);
  CHECK(mem->AbsorbDirtyLog(2, log).code() == absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace amalgam::memory
