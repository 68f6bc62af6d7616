// Guest memory for tests (tests only): GuestMemory::Create that REQUIREs success, so a test's
// set-up is one line. Thread-safety: call from the test thread (Catch2 REQUIRE).
#ifndef AMALGAM_MEMORY_TEST_MEMORY_H_
#define AMALGAM_MEMORY_TEST_MEMORY_H_

#include <catch2/catch.hpp>
#include <memory>
#include <utility>
#include <vector>

#include "memory/guest_memory.h"

namespace amalgam::memory::testing {

inline std::unique_ptr<GuestMemory> MakeMemory(std::vector<RegionSpec> regions,
                                               GuestMemory::Options options = {}) {
  auto mem = GuestMemory::Create(std::move(regions), options);
  INFO(mem.status().ToString());
  REQUIRE(mem.ok());
  return std::move(*mem);
}

// GuestMemory::X86Layout(ram_bytes): RAM below 3 GiB, the rest from 4 GiB.
inline std::unique_ptr<GuestMemory> MakeX86Memory(uint64_t ram_bytes) {
  return MakeMemory(GuestMemory::X86Layout(ram_bytes));
}

}  // namespace amalgam::memory::testing

#endif  // AMALGAM_MEMORY_TEST_MEMORY_H_
