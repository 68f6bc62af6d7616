// A small encoder for ACPI Machine Language (ACPI 6.5 chapter 20) and ACPI resource descriptors
// (chapter 6.4): just the terms a VMM's DSDT needs (names, integers, strings, buffers, packages,
// scopes, devices, methods that return a value, and resource templates).
//
// Every builder returns a `Term`: the encoded bytes, or the first error met while building it or
// any of its parts (a bad name, a package with too many elements, an object too large for a
// PkgLength). Errors travel up through composition, so a whole DSDT is checked once at the end.
// Thread-safety: value types and pure functions. Ownership: a Term owns its bytes.
#ifndef AMALGAM_VMM_ACPI_AML_H_
#define AMALGAM_VMM_ACPI_AML_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace amalgam::vmm::acpi {

using Bytes = std::vector<uint8_t>;

class Term {
 public:
  static Term Of(Bytes bytes) { return Term(std::move(bytes), absl::OkStatus()); }
  static Term Error(absl::Status status) { return Term({}, std::move(status)); }

  bool ok() const { return status_.ok(); }
  const absl::Status& status() const { return status_; }
  // Only meaningful when ok().
  const Bytes& bytes() const { return bytes_; }
  absl::StatusOr<Bytes> Encode() const {
    if (!ok()) return status_;
    return bytes_;
  }

 private:
  Term(Bytes bytes, absl::Status status) : bytes_(std::move(bytes)), status_(std::move(status)) {}
  Bytes bytes_;
  absl::Status status_;
};

namespace aml {

// PkgLength for an object whose body (everything after the PkgLength) is `body_len` bytes: the
// encoded length counts itself, so it takes 1 byte up to a total of 63, then 2 (< 2^12), 3
// (< 2^20) or 4 (< 2^28) bytes. OUT_OF_RANGE beyond that.
absl::StatusOr<Bytes> PkgLength(uint64_t body_len);

// NameString from ASL-style text: "\\" root prefix, "^" parent prefixes, segments separated by
// '.', each 1-4 of [A-Z0-9_] starting with [A-Z_] and padded with '_' ("\\_SB.COM1", "_HID").
Term NameString(absl::string_view path);

// Integers in the shortest encoding: ZeroOp, OneOp, then Byte/Word/DWord/QWord prefixes.
Term Integer(uint64_t value);
// A String object: printable ASCII (0x01..0x7F), NUL-terminated by the encoder.
Term String(absl::string_view text);
// A compressed EISA id ("PNP0501") as the DWord integer ASL's EISAID() produces.
Term EisaId(absl::string_view id);
// Buffer(){bytes}.
Term Buffer(absl::Span<const uint8_t> data);
// Package(){elements}; at most 255 elements (NumElements is one byte).
Term Package(const std::vector<Term>& elements);

// Name(path, value).
Term Name(absl::string_view path, const Term& value);
// Scope(path){body}, Device(path){body}.
Term Scope(absl::string_view path, const std::vector<Term>& body);
Term Device(absl::string_view path, const std::vector<Term>& body);
// Method(path, arg_count, Serialized/NotSerialized){body}; arg_count 0..7.
Term Method(absl::string_view path, int arg_count, bool serialized, const std::vector<Term>& body);
// Return(value).
Term Return(const Term& value);

// --- Resource descriptors (the contents of a ResourceTemplate) ---------------------------------

// Memory32Fixed(ReadWrite/ReadOnly, base, length): a large item, 12 bytes.
Term Memory32Fixed(bool read_write, uint32_t base, uint32_t length);
// IO(Decode16, min, max, alignment, length): a small item, 8 bytes.
Term Io(uint16_t min, uint16_t max, uint8_t alignment, uint8_t length);

struct InterruptFlags {
  bool consumer = true;     // ResourceConsumer (else ResourceProducer)
  bool edge = true;         // Edge (else Level)
  bool active_low = false;  // ActiveLow (else ActiveHigh)
  bool shared = false;      // Shared (else Exclusive)
};
// Interrupt(...){irqs}: the extended interrupt descriptor (large item 0x09), 1..255 interrupts.
Term Interrupt(const InterruptFlags& flags, absl::Span<const uint32_t> irqs);

// ResourceTemplate(){descriptors}: a Buffer holding the descriptors and an EndTag whose checksum
// makes the template's bytes sum to zero.
Term ResourceTemplate(const std::vector<Term>& descriptors);

}  // namespace aml
}  // namespace amalgam::vmm::acpi

#endif  // AMALGAM_VMM_ACPI_AML_H_
