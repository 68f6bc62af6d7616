// Pins the `compute` workload's checksums: the guest prints them, qemu_boot_test.sh and the VMM
// end-to-end tests expect exactly these values, so a change to compute.h must show up here first.
#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

extern "C" {
#include "guest/compute.h"
}

namespace {

uint64_t ChecksumForMib(uint64_t mib) {
  std::vector<unsigned long long> buf(mib << 17);  // mib MiB of qwords
  return amalgam_compute_checksum(buf.data(), buf.size());
}

}  // namespace

TEST_CASE("compute checksum matches the published constants", "[guest][compute]") {
  CHECK(ChecksumForMib(1) == 0x4f283bac9c0b89e2ull);
  CHECK(ChecksumForMib(16) == 0xdd78d5100543c95eull);
}

TEST_CASE("compute checksum does not depend on the buffer's previous contents",
          "[guest][compute]") {
  std::vector<unsigned long long> buf(1 << 17, 0xDEADBEEFCAFEF00Dull);
  CHECK(amalgam_compute_checksum(buf.data(), buf.size()) == 0x4f283bac9c0b89e2ull);
}

TEST_CASE("compute checksum depends on the size", "[guest][compute]") {
  std::vector<unsigned long long> buf(2);
  uint64_t one = amalgam_compute_checksum(buf.data(), 1);
  uint64_t two = amalgam_compute_checksum(buf.data(), 2);
  CHECK(one != two);
}
