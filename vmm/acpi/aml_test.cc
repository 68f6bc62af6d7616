#include "vmm/acpi/aml.h"

#include <catch2/catch.hpp>

namespace amalgam::vmm::acpi::aml {
namespace {

Bytes Ok(const Term& t) {
  INFO(t.status().ToString());
  REQUIRE(t.ok());
  return t.bytes();
}

Bytes Pkg(uint64_t body_len) {
  absl::StatusOr<Bytes> b = PkgLength(body_len);
  REQUIRE(b.ok());
  return *b;
}

// Decodes a PkgLength the way an AML interpreter does: returns (value, bytes used).
std::pair<uint64_t, size_t> DecodePkgLength(const Bytes& b) {
  size_t follow = b[0] >> 6;
  if (follow == 0) return {b[0] & 0x3f, 1};
  uint64_t v = b[0] & 0x0f;
  for (size_t i = 0; i < follow; ++i) v |= uint64_t{b[1 + i]} << (4 + 8 * i);
  return {v, 1 + follow};
}

TEST_CASE("PkgLength picks 1..4 bytes at the 63/4095/2^20/2^28 boundaries") {
  // The encoded value counts the PkgLength bytes themselves.
  CHECK(Pkg(0) == Bytes{0x01});
  CHECK(Pkg(62) == Bytes{0x3f});                          // total 63: the largest one-byte length
  CHECK(Pkg(63) == Bytes{0x41, 0x04});                    // total 65 = 0x041
  CHECK(Pkg(4093) == Bytes{0x4f, 0xff});                  // total 4095: the largest two-byte length
  CHECK(Pkg(4094) == Bytes{0x81, 0x00, 0x01});            // total 4097 = 0x1001
  CHECK(Pkg((1u << 20) - 4) == Bytes{0x8f, 0xff, 0xff});  // total 2^20 - 1
  CHECK(Pkg((1u << 20) - 3).size() == 4);
  CHECK(Pkg((1u << 28) - 5) == Bytes{0xcf, 0xff, 0xff, 0xff});  // total 2^28 - 1
  absl::StatusOr<Bytes> too_big = PkgLength((1u << 28) - 4);
  CHECK(too_big.status().code() == absl::StatusCode::kOutOfRange);

  // Round trip over every boundary neighbourhood: decoded total == body + own size.
  for (uint64_t body :
       {0ull, 1ull, 61ull, 62ull, 63ull, 64ull, 4092ull, 4093ull, 4094ull, 4095ull, 4096ull,
        65536ull, 1048572ull, 1048573ull, 1048575ull, 1048576ull, 268435450ull, 268435451ull}) {
    Bytes enc = Pkg(body);
    auto [value, used] = DecodePkgLength(enc);
    INFO("body " << body);
    CHECK(used == enc.size());
    CHECK(value == body + used);
    if (used > 1) CHECK((enc[0] & 0x30) == 0);  // bits 4-5 reserved when bytes follow
  }
}

TEST_CASE("Integer uses Zero/One ops and the shortest prefix") {
  CHECK(Ok(Integer(0)) == Bytes{0x00});
  CHECK(Ok(Integer(1)) == Bytes{0x01});
  CHECK(Ok(Integer(2)) == Bytes{0x0a, 0x02});
  CHECK(Ok(Integer(0xff)) == Bytes{0x0a, 0xff});
  CHECK(Ok(Integer(0x100)) == Bytes{0x0b, 0x00, 0x01});
  CHECK(Ok(Integer(0xffff)) == Bytes{0x0b, 0xff, 0xff});
  CHECK(Ok(Integer(0x10000)) == Bytes{0x0c, 0x00, 0x00, 0x01, 0x00});
  CHECK(Ok(Integer(0xffffffff)) == Bytes{0x0c, 0xff, 0xff, 0xff, 0xff});
  CHECK(Ok(Integer(0x100000000)) == Bytes{0x0e, 0, 0, 0, 0, 1, 0, 0, 0});
  CHECK(Ok(Integer(~0ull)) == Bytes{0x0e, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
}

TEST_CASE("Strings are NUL-terminated ASCII") {
  CHECK(Ok(String("COM1")) == Bytes{0x0d, 'C', 'O', 'M', '1', 0x00});
  CHECK(Ok(String("")) == Bytes{0x0d, 0x00});
  CHECK(!String(absl::string_view("a\0b", 3)).ok());
  CHECK(!String("caf\xc3\xa9").ok());
}

TEST_CASE("NameString: segments, padding, root, parent, dual and multi prefixes") {
  CHECK(Ok(NameString("_HID")) == Bytes{'_', 'H', 'I', 'D'});
  CHECK(Ok(NameString("_SB")) == Bytes{'_', 'S', 'B', '_'});
  CHECK(Ok(NameString("\\_SB")) == Bytes{'\\', '_', 'S', 'B', '_'});
  CHECK(Ok(NameString("\\")) == Bytes{'\\', 0x00});
  CHECK(Ok(NameString("^^V0")) == Bytes{'^', '^', 'V', '0', '_', '_'});
  CHECK(Ok(NameString("\\_SB.COM1")) == Bytes{'\\', 0x2e, '_', 'S', 'B', '_', 'C', 'O', 'M', '1'});
  CHECK(Ok(NameString("A.B.C")) ==
        Bytes{0x2f, 3, 'A', '_', '_', '_', 'B', '_', '_', '_', 'C', '_', '_', '_'});
  for (const char* bad : {"", "^", "TOOLONG", "1ABC", "a", "AB..C", "A-B", "\\.X"}) {
    INFO(bad);
    Term t = NameString(bad);
    CHECK(t.status().code() == absl::StatusCode::kInvalidArgument);
  }
}

TEST_CASE("EISAID compresses PNP ids like ASL's EISAID()") {
  CHECK(Ok(EisaId("PNP0501")) == Bytes{0x0c, 0x41, 0xd0, 0x05, 0x01});  // 0x0105D041
  CHECK(Ok(EisaId("PNP0A03")) == Bytes{0x0c, 0x41, 0xd0, 0x0a, 0x03});  // 0x030AD041
  CHECK(!EisaId("PNP050").ok());
  CHECK(!EisaId("pnp0501").ok());
  CHECK(!EisaId("PNP05G1").ok());
}

TEST_CASE("Name, Buffer, Package, Scope, Device, Method, Return") {
  CHECK(Ok(Name("_UID", Integer(0))) == Bytes{0x08, '_', 'U', 'I', 'D', 0x00});
  const uint8_t data[] = {0xaa, 0xbb};
  CHECK(Ok(Buffer(data)) == Bytes{0x11, 0x05, 0x0a, 0x02, 0xaa, 0xbb});
  CHECK(Ok(Package({Integer(5), Integer(0)})) == Bytes{0x12, 0x05, 0x02, 0x0a, 0x05, 0x00});
  CHECK(Ok(Method("_STA", 0, false, {Return(Integer(0x0f))})) ==
        Bytes{0x14, 0x09, '_', 'S', 'T', 'A', 0x00, 0xa4, 0x0a, 0x0f});
  CHECK(Ok(Method("M", 3, true, {})) == Bytes{0x14, 0x06, 'M', '_', '_', '_', 0x0b});
  CHECK(Ok(Device("DEV0", {})) == Bytes{0x5b, 0x82, 0x05, 'D', 'E', 'V', '0'});
  CHECK(Ok(Scope("\\_SB", {Device("D", {})})) ==
        Bytes{0x10, 0x0d, '\\', '_', 'S', 'B', '_', 0x5b, 0x82, 0x05, 'D', '_', '_', '_'});
  CHECK(!Method("M", 8, false, {}).ok());
  std::vector<Term> many(256, Integer(0));
  CHECK(Package(many).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("A large body switches the enclosing object to a multi-byte PkgLength") {
  std::vector<Term> body;
  for (int i = 0; i < 20; ++i) body.push_back(Name("_UID", Integer(0x12345678)));  // 10 B each
  Bytes dev = Ok(Device("BIG", body));
  REQUIRE(dev.size() > 4);
  CHECK(dev[0] == 0x5b);
  CHECK(dev[1] == 0x82);
  Bytes rest(dev.begin() + 2, dev.end());
  auto [value, used] = DecodePkgLength(rest);
  CHECK(used == 2);
  CHECK(value == rest.size());  // PkgLength spans itself, the name and the body
}

TEST_CASE("Errors in a part surface from the whole tree") {
  Term t = Scope("\\_SB", {Device("OK", {}), Device("BAD!", {})});
  CHECK(t.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(t.status().message().find("BAD!") != std::string::npos);
  CHECK(!Name("_HID", EisaId("nope")).ok());
  CHECK(!ResourceTemplate({Interrupt({}, {})}).ok());
}

TEST_CASE("Resource descriptors and the EndTag checksum") {
  CHECK(Ok(Io(0x3f8, 0x3f8, 0, 8)) == Bytes{0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x00, 0x08});
  CHECK(Ok(Memory32Fixed(true, 0xd0000000, 0x200)) ==
        Bytes{0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xd0, 0x00, 0x02, 0x00, 0x00});
  InterruptFlags level_low;
  level_low.edge = false;
  level_low.active_low = true;
  level_low.shared = true;
  const uint32_t irqs[] = {5, 0x20};
  CHECK(Ok(Interrupt(level_low, irqs)) ==
        Bytes{0x89, 0x0a, 0x00, 0x0d, 0x02, 0x05, 0, 0, 0, 0x20, 0, 0, 0});
  CHECK(Ok(Interrupt(InterruptFlags{}, {4}))[3] == 0x03);  // consumer, edge, high, exclusive

  Bytes rt = Ok(ResourceTemplate({Io(0x3f8, 0x3f8, 0, 8), Interrupt(InterruptFlags{}, {4})}));
  // Buffer: 0x11, PkgLength, size (byte), then the descriptors and EndTag.
  REQUIRE(rt[0] == 0x11);
  size_t size = rt[3];
  REQUIRE(rt[2] == 0x0a);
  REQUIRE(rt.size() == 4 + size);
  Bytes tmpl(rt.begin() + 4, rt.end());
  CHECK(tmpl[tmpl.size() - 2] == 0x79);
  uint8_t sum = 0;
  for (uint8_t b : tmpl) sum += b;
  CHECK(sum == 0);
}

}  // namespace
}  // namespace amalgam::vmm::acpi::aml
