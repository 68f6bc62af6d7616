#include "vmm/acpi/aml.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace amalgam::vmm::acpi::aml {
namespace {

// Opcodes and prefixes (ACPI 6.5 section 20.3).
constexpr uint8_t kZeroOp = 0x00;
constexpr uint8_t kOneOp = 0x01;
constexpr uint8_t kNameOp = 0x08;
constexpr uint8_t kBytePrefix = 0x0a;
constexpr uint8_t kWordPrefix = 0x0b;
constexpr uint8_t kDWordPrefix = 0x0c;
constexpr uint8_t kStringPrefix = 0x0d;
constexpr uint8_t kQWordPrefix = 0x0e;
constexpr uint8_t kScopeOp = 0x10;
constexpr uint8_t kBufferOp = 0x11;
constexpr uint8_t kPackageOp = 0x12;
constexpr uint8_t kMethodOp = 0x14;
constexpr uint8_t kDualNamePrefix = 0x2e;
constexpr uint8_t kMultiNamePrefix = 0x2f;
constexpr uint8_t kExtOpPrefix = 0x5b;
constexpr uint8_t kDeviceOp = 0x82;  // after kExtOpPrefix
constexpr uint8_t kRootChar = 0x5c;
constexpr uint8_t kParentPrefixChar = 0x5e;
constexpr uint8_t kReturnOp = 0xa4;

// Resource descriptor tags (ACPI 6.5 section 6.4).
constexpr uint8_t kIoTag = 0x47;             // small item 0x08, length 7
constexpr uint8_t kEndTag = 0x79;            // small item 0x0F, length 1
constexpr uint8_t kMemory32FixedTag = 0x86;  // large item 0x06
constexpr uint8_t kExtendedIrqTag = 0x89;    // large item 0x09

void PutLe(Bytes& out, uint64_t value, int width) {
  for (int i = 0; i < width; ++i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

void Append(Bytes& out, const Bytes& more) { out.insert(out.end(), more.begin(), more.end()); }

// Concatenates the parts, or returns the first failed part.
Term Concat(const std::vector<Term>& parts) {
  Bytes out;
  for (const Term& part : parts) {
    if (!part.ok()) return part;
    Append(out, part.bytes());
  }
  return Term::Of(std::move(out));
}

// opcode bytes, PkgLength, then body.
Term WithPkgLength(Bytes opcode, const Term& body) {
  if (!body.ok()) return body;
  absl::StatusOr<Bytes> len = PkgLength(body.bytes().size());
  if (!len.ok()) return Term::Error(len.status());
  Append(opcode, *len);
  Append(opcode, body.bytes());
  return Term::Of(std::move(opcode));
}

bool IsLeadChar(char c) { return (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsNameChar(char c) { return IsLeadChar(c) || (c >= '0' && c <= '9'); }

}  // namespace

absl::StatusOr<Bytes> PkgLength(uint64_t body_len) {
  // The encoded value includes the PkgLength bytes themselves.
  if (body_len + 1 <= 0x3f) return Bytes{static_cast<uint8_t>(body_len + 1)};
  for (int extra = 1; extra <= 3; ++extra) {
    uint64_t total = body_len + 1 + extra;
    if (total < (uint64_t{1} << (4 + 8 * extra))) {
      // Byte 0: bits 7-6 count the following bytes, bits 3-0 are the low nibble.
      Bytes out{static_cast<uint8_t>((extra << 6) | (total & 0x0f))};
      PutLe(out, total >> 4, extra);
      return out;
    }
  }
  return absl::OutOfRangeError(absl::StrCat("AML object body of ", body_len,
                                            " bytes exceeds the PkgLength limit (2^28 - 5)"));
}

Term NameString(absl::string_view path) {
  Bytes out;
  absl::string_view rest = path;
  if (!rest.empty() && rest.front() == '\\') {
    out.push_back(kRootChar);
    rest.remove_prefix(1);
  } else {
    while (!rest.empty() && rest.front() == '^') {
      out.push_back(kParentPrefixChar);
      rest.remove_prefix(1);
    }
  }
  if (rest.empty()) {
    if (out.empty() || out.front() != kRootChar) {
      return Term::Error(
          absl::InvalidArgumentError(absl::StrCat("AML name \"", path, "\" is empty")));
    }
    out.push_back(0x00);  // NullName: the root itself
    return Term::Of(std::move(out));
  }
  std::vector<absl::string_view> segs = absl::StrSplit(rest, '.');
  if (segs.size() > 255) {
    return Term::Error(absl::InvalidArgumentError(
        absl::StrCat("AML name \"", path, "\" has more than 255 segments")));
  }
  for (absl::string_view seg : segs) {
    bool valid = !seg.empty() && seg.size() <= 4 && IsLeadChar(seg[0]);
    for (char c : seg) valid = valid && IsNameChar(c);
    if (!valid) {
      return Term::Error(absl::InvalidArgumentError(
          absl::StrCat("AML name \"", path, "\": segment \"", seg,
                       "\" must be 1-4 characters of [A-Z0-9_] starting with a letter or '_'")));
    }
  }
  if (segs.size() == 2) out.push_back(kDualNamePrefix);
  if (segs.size() > 2) {
    out.push_back(kMultiNamePrefix);
    out.push_back(static_cast<uint8_t>(segs.size()));
  }
  for (absl::string_view seg : segs) {
    for (size_t i = 0; i < 4; ++i) out.push_back(i < seg.size() ? seg[i] : '_');
  }
  return Term::Of(std::move(out));
}

Term Integer(uint64_t value) {
  Bytes out;
  if (value == 0) {
    out.push_back(kZeroOp);
  } else if (value == 1) {
    out.push_back(kOneOp);
  } else if (value <= 0xff) {
    out.push_back(kBytePrefix);
    PutLe(out, value, 1);
  } else if (value <= 0xffff) {
    out.push_back(kWordPrefix);
    PutLe(out, value, 2);
  } else if (value <= 0xffffffff) {
    out.push_back(kDWordPrefix);
    PutLe(out, value, 4);
  } else {
    out.push_back(kQWordPrefix);
    PutLe(out, value, 8);
  }
  return Term::Of(std::move(out));
}

Term String(absl::string_view text) {
  Bytes out{kStringPrefix};
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u == 0 || u > 0x7f) {
      return Term::Error(absl::InvalidArgumentError(
          "AML string must be ASCII 0x01-0x7F (no NUL, no 8-bit characters)"));
    }
    out.push_back(u);
  }
  out.push_back(0x00);
  return Term::Of(std::move(out));
}

Term EisaId(absl::string_view id) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  bool valid = id.size() == 7;
  for (size_t i = 0; valid && i < 3; ++i) valid = id[i] >= 'A' && id[i] <= 'Z';
  for (size_t i = 3; valid && i < 7; ++i) valid = hex(id[i]) >= 0;
  if (!valid) {
    return Term::Error(absl::InvalidArgumentError(absl::StrCat(
        "EISA id \"", id, "\" must be 3 upper-case letters and 4 upper-case hex digits")));
  }
  // Three 5-bit letters ('A' = 1) in a big-endian 16-bit word, then the product number's two
  // bytes, stored little-endian as one DWord.
  uint32_t vendor = ((id[0] - '@') << 10) | ((id[1] - '@') << 5) | (id[2] - '@');
  uint32_t b0 = vendor >> 8, b1 = vendor & 0xff;
  uint32_t b2 = (hex(id[3]) << 4) | hex(id[4]), b3 = (hex(id[5]) << 4) | hex(id[6]);
  return Integer(b0 | (b1 << 8) | (b2 << 16) | (b3 << 24));
}

Term Buffer(absl::Span<const uint8_t> data) {
  Term size = Integer(data.size());
  Bytes body = size.bytes();
  body.insert(body.end(), data.begin(), data.end());
  return WithPkgLength({kBufferOp}, Term::Of(std::move(body)));
}

Term Package(const std::vector<Term>& elements) {
  if (elements.size() > 255) {
    return Term::Error(absl::InvalidArgumentError(
        absl::StrCat("AML Package has ", elements.size(), " elements; the limit is 255")));
  }
  Term list = Concat(elements);
  if (!list.ok()) return list;
  Bytes body{static_cast<uint8_t>(elements.size())};
  Append(body, list.bytes());
  return WithPkgLength({kPackageOp}, Term::Of(std::move(body)));
}

Term Name(absl::string_view path, const Term& value) {
  return Concat({Term::Of({kNameOp}), NameString(path), value});
}

Term Scope(absl::string_view path, const std::vector<Term>& body) {
  Term name = NameString(path);
  if (!name.ok()) return name;
  Term list = Concat(body);
  return WithPkgLength({kScopeOp}, Concat({name, list}));
}

Term Device(absl::string_view path, const std::vector<Term>& body) {
  Term name = NameString(path);
  if (!name.ok()) return name;
  return WithPkgLength({kExtOpPrefix, kDeviceOp}, Concat({name, Concat(body)}));
}

Term Method(absl::string_view path, int arg_count, bool serialized, const std::vector<Term>& body) {
  if (arg_count < 0 || arg_count > 7) {
    return Term::Error(absl::InvalidArgumentError(
        absl::StrCat("AML Method ", path, ": arg_count ", arg_count, " must be 0..7")));
  }
  Term name = NameString(path);
  if (!name.ok()) return name;
  // MethodFlags: bits 0-2 ArgCount, bit 3 SerializeFlag, bits 4-7 SyncLevel (0).
  uint8_t flags = static_cast<uint8_t>(arg_count | (serialized ? 0x08 : 0));
  return WithPkgLength({kMethodOp}, Concat({name, Term::Of({flags}), Concat(body)}));
}

Term Return(const Term& value) { return Concat({Term::Of({kReturnOp}), value}); }

Term Memory32Fixed(bool read_write, uint32_t base, uint32_t length) {
  Bytes out{kMemory32FixedTag};
  PutLe(out, 9, 2);  // length of the data that follows
  out.push_back(read_write ? 1 : 0);
  PutLe(out, base, 4);
  PutLe(out, length, 4);
  return Term::Of(std::move(out));
}

Term Io(uint16_t min, uint16_t max, uint8_t alignment, uint8_t length) {
  Bytes out{kIoTag, 0x01};  // information bit 0: the device decodes 16 address bits
  PutLe(out, min, 2);
  PutLe(out, max, 2);
  out.push_back(alignment);
  out.push_back(length);
  return Term::Of(std::move(out));
}

Term Interrupt(const InterruptFlags& flags, absl::Span<const uint32_t> irqs) {
  if (irqs.empty() || irqs.size() > 255) {
    return Term::Error(absl::InvalidArgumentError(
        absl::StrCat("Interrupt descriptor with ", irqs.size(), " interrupts; need 1..255")));
  }
  Bytes out{kExtendedIrqTag};
  PutLe(out, 2 + 4 * irqs.size(), 2);
  out.push_back(static_cast<uint8_t>((flags.consumer ? 0x01 : 0) | (flags.edge ? 0x02 : 0) |
                                     (flags.active_low ? 0x04 : 0) | (flags.shared ? 0x08 : 0)));
  out.push_back(static_cast<uint8_t>(irqs.size()));
  for (uint32_t irq : irqs) PutLe(out, irq, 4);
  return Term::Of(std::move(out));
}

Term ResourceTemplate(const std::vector<Term>& descriptors) {
  Term list = Concat(descriptors);
  if (!list.ok()) return list;
  Bytes data = list.bytes();
  data.push_back(kEndTag);
  uint8_t sum = 0;
  for (uint8_t b : data) sum += b;
  data.push_back(static_cast<uint8_t>(-sum));
  return Buffer(data);
}

}  // namespace amalgam::vmm::acpi::aml
