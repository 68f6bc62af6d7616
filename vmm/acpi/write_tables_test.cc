#include "vmm/acpi/write_tables.h"

#include <catch2/catch.hpp>
#include <cstring>

namespace amalgam::vmm::acpi {
namespace {

using memory::GuestAddress;
using memory::GuestMemory;

TEST_CASE("WriteAcpiTables puts every table at its address in guest RAM") {
  auto mem = GuestMemory::Create(GuestMemory::X86Layout(64 << 20));
  REQUIRE(mem.ok());
  AcpiConfig c;
  c.num_vcpus = 2;
  c.virtio_mmio = {{0xd0000000, 0x1000, 5}};
  absl::StatusOr<AcpiTables> t = Build(c);
  REQUIRE(t.ok());
  absl::StatusOr<uint64_t> rsdp = WriteAcpiTables(*t, **mem);
  REQUIRE(rsdp.ok());
  CHECK(*rsdp == 0xe0000);
  for (const AcpiBlob& b : t->blobs) {
    Bytes back(b.bytes.size());
    REQUIRE((*mem)->Read(GuestAddress(b.address), absl::MakeSpan(back)).ok());
    CHECK(back == b.bytes);
  }
  char sig[8];
  REQUIRE(
      (*mem)->Read(GuestAddress(0xe0000), absl::MakeSpan(reinterpret_cast<uint8_t*>(sig), 8)).ok());
  CHECK(std::memcmp(sig, "RSD PTR ", 8) == 0);
}

TEST_CASE("WriteAcpiTables names the table guest RAM does not back") {
  // RAM only from 1 MiB: the BIOS area is a hole.
  auto mem = GuestMemory::Create({{GuestAddress(0x100000), 16 << 20}});
  REQUIRE(mem.ok());
  absl::StatusOr<AcpiTables> t = Build(AcpiConfig());
  REQUIRE(t.ok());
  absl::StatusOr<uint64_t> rsdp = WriteAcpiTables(*t, **mem);
  CHECK(rsdp.status().code() == absl::StatusCode::kOutOfRange);
  CHECK(rsdp.status().message().find("RSD PTR") != absl::string_view::npos);
}

}  // namespace
}  // namespace amalgam::vmm::acpi
