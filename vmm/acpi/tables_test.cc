#include "vmm/acpi/tables.h"

#include <catch2/catch.hpp>
#include <cstring>
#include <string>

namespace amalgam::vmm::acpi {
namespace {

uint64_t Le(const Bytes& b, size_t off, int width) {
  uint64_t v = 0;
  for (int i = 0; i < width; ++i) v |= uint64_t{b[off + i]} << (8 * i);
  return v;
}

std::string Sig(const Bytes& b) { return std::string(b.begin(), b.begin() + 4); }

void CheckSdt(const Bytes& t, const char* sig, uint8_t revision) {
  INFO(sig);
  REQUIRE(t.size() >= kSdtHeaderSize);
  CHECK(Sig(t) == sig);
  CHECK(Le(t, 4, 4) == t.size());
  CHECK(t[8] == revision);
  CHECK(Checksum(t) == 0);
  CHECK(std::memcmp(&t[10], "AMLGAM", 6) == 0);
}

TEST_CASE("RSDP v2 has both checksums and points at the XSDT") {
  Bytes rsdp = BuildRsdp(0x12345678abcdull);
  REQUIRE(rsdp.size() == 36);
  CHECK(std::string(rsdp.begin(), rsdp.begin() + 8) == "RSD PTR ");
  CHECK(Checksum(absl::MakeConstSpan(rsdp).subspan(0, 20)) == 0);
  CHECK(Checksum(rsdp) == 0);
  CHECK(rsdp[15] == 2);
  CHECK(Le(rsdp, 20, 4) == 36);
  CHECK(Le(rsdp, 24, 8) == 0x12345678abcdull);
}

TEST_CASE("XSDT lists 64-bit table pointers") {
  const uint64_t addrs[] = {0xe1000, 0x1'0000'0000ull};
  Bytes xsdt = BuildXsdt(addrs);
  CheckSdt(xsdt, "XSDT", 1);
  REQUIRE(xsdt.size() == 36 + 16);
  CHECK(Le(xsdt, 36, 8) == 0xe1000);
  CHECK(Le(xsdt, 44, 8) == 0x100000000ull);
}

TEST_CASE("FADT is 6.5, hardware-reduced, with X_DSDT and optional sleep registers") {
  FadtOptions o;
  o.dsdt_address = 0xe0040;
  Bytes fadt = BuildFadt(o);
  CheckSdt(fadt, "FACP", 6);
  REQUIRE(fadt.size() == 276);
  CHECK(fadt[131] == 5);
  CHECK((Le(fadt, 112, 4) & (1u << 20)) != 0);
  CHECK(Le(fadt, 40, 4) == 0);
  CHECK(Le(fadt, 140, 8) == 0xe0040);
  CHECK(Le(fadt, 244 + 4, 8) == 0);  // no sleep control register

  o.sleep_control_port = 0x600;
  fadt = BuildFadt(o);
  CHECK(Checksum(fadt) == 0);
  CHECK(fadt[244] == 1);  // system I/O
  CHECK(Le(fadt, 244 + 4, 8) == 0x600);
  CHECK(Le(fadt, 256 + 4, 8) == 0x601);
}

TEST_CASE("MADT has one enabled local APIC per vCPU and the IOAPIC") {
  MadtOptions o;
  o.num_vcpus = 3;
  absl::StatusOr<Bytes> madt = BuildMadt(o);
  REQUIRE(madt.ok());
  CheckSdt(*madt, "APIC", 5);
  const Bytes m = *madt;
  CHECK(Le(m, 36, 4) == 0xfee00000);
  size_t off = 44;
  int lapics = 0, ioapics = 0, overrides = 0, nmis = 0;
  while (off < m.size()) {
    uint8_t type = m[off], len = m[off + 1];
    REQUIRE(len >= 2);
    REQUIRE(off + len <= m.size());
    if (type == 0) {
      CHECK(m[off + 2] == lapics);  // processor UID
      CHECK(m[off + 3] == lapics);  // APIC id
      CHECK(Le(m, off + 4, 4) == 1);
      ++lapics;
    } else if (type == 1) {
      CHECK(m[off + 2] == 3);  // after the local APIC ids
      CHECK(Le(m, off + 4, 4) == 0xfec00000);
      CHECK(Le(m, off + 8, 4) == 0);
      ++ioapics;
    } else if (type == 2) {
      ++overrides;
    } else if (type == 4) {
      ++nmis;
    }
    off += len;
  }
  CHECK(off == m.size());
  CHECK(lapics == 3);
  CHECK(ioapics == 1);
  CHECK(overrides == 0);
  CHECK(nmis == 1);

  o.irq0_to_gsi2 = true;
  madt = BuildMadt(o);
  REQUIRE(madt.ok());
  CHECK(Checksum(*madt) == 0);
  CHECK(madt->size() == m.size() + 10);

  for (uint32_t bad : {0u, 255u, 1000u}) {
    o.num_vcpus = bad;
    CHECK(BuildMadt(o).status().code() == absl::StatusCode::kInvalidArgument);
  }
}

TEST_CASE("DSDT carries COM1 and one LNRO0005 device per virtio-mmio slot") {
  DsdtOptions o;
  o.virtio_mmio = {{0xd0000000, 0x1000, 5}, {0xd0001000, 0x1000, 6}};
  absl::StatusOr<Bytes> dsdt = BuildDsdt(o);
  REQUIRE(dsdt.ok());
  CheckSdt(*dsdt, "DSDT", 2);
  std::string text(dsdt->begin(), dsdt->end());
  CHECK(text.find("COM1") != std::string::npos);
  CHECK(text.find("V000") != std::string::npos);
  CHECK(text.find("V001") != std::string::npos);
  CHECK(text.find("V002") == std::string::npos);
  CHECK(text.find("LNRO0005") != std::string::npos);
  CHECK(text.find("_S5_") == std::string::npos);
  // The second device's Memory32Fixed base, little-endian.
  CHECK(text.find(std::string("\x86\x09\x00\x01\x00\x10\x00\xd0", 8)) != std::string::npos);

  o.s5 = true;
  o.com1 = false;
  dsdt = BuildDsdt(o);
  REQUIRE(dsdt.ok());
  text.assign(dsdt->begin(), dsdt->end());
  CHECK(text.find("_S5_") != std::string::npos);
  CHECK(text.find("COM1") == std::string::npos);

  o.virtio_mmio = {{0xfffff000, 0x2000, 5}};
  CHECK(BuildDsdt(o).status().code() == absl::StatusCode::kInvalidArgument);
  o.virtio_mmio = {{0xd0000000, 0, 5}};
  CHECK(BuildDsdt(o).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("A DSDT with many devices grows past the short PkgLength forms") {
  DsdtOptions o;
  for (uint64_t i = 0; i < 300; ++i) o.virtio_mmio.push_back({0xd0000000 + i * 0x200, 0x200, 5});
  absl::StatusOr<Bytes> dsdt = BuildDsdt(o);
  REQUIRE(dsdt.ok());
  CHECK(dsdt->size() > 4096 * 4);
  CHECK(Checksum(*dsdt) == 0);
  std::string text(dsdt->begin(), dsdt->end());
  CHECK(text.find("V12B") != std::string::npos);  // device 299
}

}  // namespace
}  // namespace amalgam::vmm::acpi
