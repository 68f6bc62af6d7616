#include "vmm/acpi/acpi.h"

#include <catch2/catch.hpp>

namespace amalgam::vmm::acpi {
namespace {

uint64_t Le(const Bytes& b, size_t off, int width) {
  uint64_t v = 0;
  for (int i = 0; i < width; ++i) v |= uint64_t{b[off + i]} << (8 * i);
  return v;
}

const AcpiBlob& Find(const AcpiTables& t, const std::string& sig) {
  for (const AcpiBlob& b : t.blobs) {
    if (b.signature == sig) return b;
  }
  FAIL("no " << sig);
  return t.blobs.front();
}

TEST_CASE("Build lays the tables out after the RSDP and links them") {
  AcpiConfig c;
  c.num_vcpus = 2;
  c.virtio_mmio = {{0xd0000000, 0x1000, 5}};
  absl::StatusOr<AcpiTables> t = Build(c);
  REQUIRE(t.ok());
  CHECK(t->rsdp_address == 0xe0000);
  REQUIRE(t->blobs.size() == 5);
  CHECK(t->blobs.front().signature == "RSD PTR ");
  uint64_t prev_end = 0;
  for (const AcpiBlob& b : t->blobs) {
    INFO(b.signature);
    CHECK(b.address % 8 == 0);
    CHECK(b.address >= prev_end);  // ascending, no overlap
    CHECK(Checksum(b.bytes) == 0);
    prev_end = b.address + b.bytes.size();
  }
  CHECK(prev_end <= kBiosAreaEnd);
  const AcpiBlob& xsdt = Find(*t, "XSDT");
  CHECK(Le(t->blobs.front().bytes, 24, 8) == xsdt.address);
  REQUIRE(xsdt.bytes.size() == 36 + 16);
  CHECK(Le(xsdt.bytes, 36, 8) == Find(*t, "FACP").address);
  CHECK(Le(xsdt.bytes, 44, 8) == Find(*t, "APIC").address);
  CHECK(Le(Find(*t, "FACP").bytes, 140, 8) == Find(*t, "DSDT").address);
}

TEST_CASE("Build rejects bad configurations with the field named") {
  AcpiConfig c;
  c.rsdp_address = 0xe0008;
  absl::StatusOr<AcpiTables> t = Build(c);
  CHECK(t.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(t.status().message().find("rsdp_address") != absl::string_view::npos);

  c = AcpiConfig();
  c.num_vcpus = 0;
  CHECK(Build(c).status().code() == absl::StatusCode::kInvalidArgument);

  c = AcpiConfig();
  for (uint64_t i = 0; i < 2000; ++i) c.virtio_mmio.push_back({0xd0000000 + i * 0x200, 0x200, 5});
  c.rsdp_address = 0xf0000;  // 64 KiB is not enough for 2000 devices
  t = Build(c);
  CHECK(t.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(t.status().message().find("tables_end") != absl::string_view::npos);
  c.tables_end = 0x200000;
  CHECK(Build(c).ok());
}

}  // namespace
}  // namespace amalgam::vmm::acpi
