// GuestMemory::Backing: the default shared memfd (4 KiB pages) and private anonymous memory with
// transparent huge pages, checked against what the kernel reports for the mappings.
#include <catch2/catch.hpp>
#include <cctype>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_format.h"
#include "memory/guest_memory.h"
#include "memory/test_memory.h"

namespace amalgam::memory {
namespace {

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;

std::unique_ptr<GuestMemory> Make(std::vector<RegionSpec> specs, GuestMemory::Backing backing) {
  return testing::MakeMemory(std::move(specs), GuestMemory::Options{backing});
}

// The /proc/self/smaps entry of the mapping that starts at `host` ("" if there is none).
std::string SmapsEntry(const uint8_t* host) {
  std::ifstream smaps("/proc/self/smaps");
  const std::string start = absl::StrFormat("%x-", reinterpret_cast<uintptr_t>(host));
  std::string line, entry;
  bool in_entry = false;
  while (std::getline(smaps, line)) {
    // Entry headers start with the range in lower-case hex; field names are capitalized.
    bool header = !line.empty() && (std::isdigit(static_cast<unsigned char>(line[0])) ||
                                    (line[0] >= 'a' && line[0] <= 'f'));
    if (header) {
      if (in_entry) break;
      in_entry = line.rfind(start, 0) == 0;
    }
    if (in_entry) entry += line + "\n";
  }
  return entry;
}

// The two-letter flags of a mapping's "VmFlags:" line, each followed by a space.
std::string VmFlags(const std::string& entry) {
  size_t at = entry.find("VmFlags:");
  if (at == std::string::npos) return "";
  std::string flags = entry.substr(at + 8, entry.find('\n', at) - at - 8);
  return flags + " ";
}

// A "Name:   N kB" field of a smaps entry, in KiB (-1 if absent).
int64_t SmapsKb(const std::string& entry, const std::string& name) {
  size_t at = entry.find("\n" + name + ":");
  if (at == std::string::npos) return -1;
  std::istringstream in(entry.substr(at + name.size() + 2));
  int64_t kb = -1;
  in >> kb;
  return kb;
}

TEST_CASE("the default backing is one shared memfd with huge pages turned off") {
  auto mem = GuestMemory::Create({{GuestAddress(0), 4 * kMiB}});
  REQUIRE(mem.ok());
  CHECK((*mem)->backing() == GuestMemory::Backing::kSharedMemfd);
  const GuestRegion& r = (*mem)->regions()[0];
  CHECK(r.memfd() >= 0);
  std::string flags = VmFlags(SmapsEntry(r.host_address()));
  INFO(flags);
  CHECK(flags.find(" sh ") != std::string::npos);  // MAP_SHARED
  CHECK(flags.find(" nh ") != std::string::npos);  // MADV_NOHUGEPAGE: 4 KiB uffd faults
  CHECK(flags.find(" hg ") == std::string::npos);
}

TEST_CASE("huge-page backing: private, 2 MiB aligned, marked for THP, sparse, bounds-checked") {
  // 6 GiB: both x86 regions (below 3 GiB and from 4 GiB); reserving them costs nothing.
  auto mem = Make(GuestMemory::X86Layout(6 * kGiB), GuestMemory::Backing::kPrivateHugePages);
  CHECK(mem->backing() == GuestMemory::Backing::kPrivateHugePages);
  REQUIRE(mem->regions().size() == 2);
  for (const GuestRegion& r : mem->regions()) {
    CHECK(r.memfd() == -1);
    CHECK(reinterpret_cast<uintptr_t>(r.host_address()) % (2 * kMiB) == 0);
    std::string entry = SmapsEntry(r.host_address());
    REQUIRE_FALSE(entry.empty());
    std::string flags = VmFlags(entry);
    INFO(flags);
    CHECK(flags.find(" hg ") != std::string::npos);  // MADV_HUGEPAGE
    CHECK(flags.find(" nh ") == std::string::npos);
    CHECK(flags.find(" sh ") == std::string::npos);  // private
  }
  // The over-reservation for alignment was trimmed: the mapping is exactly the region.
  const GuestRegion& low = mem->regions()[0];
  std::string entry = SmapsEntry(low.host_address());
  CHECK(SmapsKb(entry, "Size") == static_cast<int64_t>(3 * kGiB >> 10));
  CHECK(SmapsKb(entry, "Rss") == 0);  // nothing touched yet

  // Accesses behave as on the memfd: across the boundary of a huge page, dirty marking, bounds.
  const GuestAddress across(2 * kMiB - 4);
  REQUIRE(mem->WriteObj<uint64_t>(across, 0x1122334455667788).ok());
  CHECK(*mem->ReadObj<uint64_t>(across) == 0x1122334455667788);
  std::vector<uint64_t> dirty = mem->dirty_bitmap(0).TakeWords();
  CHECK(dirty[(2 * kMiB / 4096 - 1) / 64] != 0);
  CHECK(mem->WriteObj<uint64_t>(GuestAddress(3 * kGiB - 4), 0).code() ==
        absl::StatusCode::kOutOfRange);
  REQUIRE(mem->WriteObj<uint32_t>(GuestAddress(4 * kGiB), 0xabcd).ok());
  CHECK(*mem->ReadObj<uint32_t>(GuestAddress(4 * kGiB)) == 0xabcd);
}

TEST_CASE("huge-page backing: more RAM than the host can map is RESOURCE_EXHAUSTED") {
  GuestMemory::Options options;
  options.backing = GuestMemory::Backing::kPrivateHugePages;
  for (uint64_t size : {uint64_t{1} << 62, ~uint64_t{4095}}) {
    auto mem = GuestMemory::Create({{GuestAddress(0), size}}, options);
    REQUIRE_FALSE(mem.ok());
    CHECK(mem.status().code() == absl::StatusCode::kResourceExhausted);
    CHECK(mem.status().message().find("guest RAM") != absl::string_view::npos);
  }
}

}  // namespace
}  // namespace amalgam::memory
