// The VcpuState binary encoding (x86-64, little endian; payloads are the kernel's ABI structs):
//
//   header:  "AMVCPUST" (8) | u32 version (1) | u32 record count
//   record:  u32 tag | u32 payload length | payload | u32 CRC-32 of (tag, length, payload)
//
// Each tag appears at most once; CPUID, REGS, SREGS, FPU, MSRS, MP_STATE, EVENTS and DEBUGREGS
// are required. Parsing checks every length before touching bytes.
#include <cstring>
#include <set>

#include "absl/strings/str_format.h"
#include "vcpu/vcpu_state.h"

namespace amalgam::vcpu {
namespace {

constexpr char kMagic[8] = {'A', 'M', 'V', 'C', 'P', 'U', 'S', 'T'};
constexpr uint32_t kVersion = 1;
constexpr uint32_t kMaxRecords = 64;
constexpr size_t kMaxCpuidEntries = 4096;
constexpr size_t kMaxMsrs = 4096;
constexpr size_t kMaxXsaveBytes = 1 << 20;

enum Tag : uint32_t {
  kCpuid = 1,
  kRegs = 2,
  kSregs = 3,
  kSregs2 = 4,
  kFpu = 5,
  kXsave = 6,
  kXcrs = 7,
  kLapic = 8,
  kMsrs = 9,
  kMpState = 10,
  kEvents = 11,
  kDebugRegs = 12,
};
constexpr uint32_t kRequired[] = {kCpuid, kRegs,    kSregs,  kFpu,
                                  kMsrs,  kMpState, kEvents, kDebugRegs};

// CRC-32 (IEEE, reflected), table-driven: states are ~10 KB and move on every vCPU migration.
struct CrcTable {
  uint32_t t[256];
  constexpr CrcTable() : t() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
      t[i] = c;
    }
  }
};
constexpr CrcTable kCrcTable;

uint32_t Crc32(uint32_t crc, const uint8_t* p, size_t n) {
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = kCrcTable.t[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

uint32_t RecordCrc(uint32_t tag, uint32_t len, const uint8_t* payload) {
  uint8_t head[8];
  std::memcpy(head, &tag, 4);
  std::memcpy(head + 4, &len, 4);
  return Crc32(Crc32(0, head, 8), payload, len);
}

void PutU32(std::vector<uint8_t>& out, uint32_t v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + 4);
}

void PutRecord(std::vector<uint8_t>& out, uint32_t tag, const void* data, size_t len) {
  PutU32(out, tag);
  PutU32(out, static_cast<uint32_t>(len));
  const auto* p = static_cast<const uint8_t*>(data);
  out.insert(out.end(), p, p + len);
  PutU32(out, RecordCrc(tag, static_cast<uint32_t>(len), p));
}

template <typename T>
void PutStruct(std::vector<uint8_t>& out, uint32_t tag, const T& value, uint32_t* count) {
  PutRecord(out, tag, &value, sizeof(T));
  ++*count;
}

template <typename T>
absl::Status GetStruct(const uint8_t* p, uint32_t len, const char* name, T* out) {
  if (len != sizeof(T)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("vCPU state: %s record has %u bytes, expected %u", name, len, sizeof(T)));
  }
  std::memcpy(out, p, sizeof(T));
  return absl::OkStatus();
}

template <typename T>
absl::Status GetArray(const uint8_t* p, uint32_t len, size_t max, const char* name,
                      std::vector<T>* out) {
  if (len % sizeof(T) != 0 || len / sizeof(T) > max) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "vCPU state: %s record of %u bytes is not a whole number of %u-byte entries (max %u)", name,
        len, sizeof(T), max));
  }
  out->resize(len / sizeof(T));
  if (len > 0) std::memcpy(out->data(), p, len);
  return absl::OkStatus();
}

absl::Status ParseRecord(uint32_t tag, const uint8_t* p, uint32_t len, VcpuState* st) {
  switch (tag) {
    case kCpuid:
      return GetArray(p, len, kMaxCpuidEntries, "cpuid", &st->cpuid);
    case kRegs:
      return GetStruct(p, len, "regs", &st->regs);
    case kSregs:
      return GetStruct(p, len, "sregs", &st->sregs);
    case kSregs2:
      st->has_sregs2 = true;
      return GetStruct(p, len, "sregs2", &st->sregs2);
    case kFpu:
      return GetStruct(p, len, "fpu", &st->fpu);
    case kXsave:
      if (len < sizeof(kvm_xsave) || len > kMaxXsaveBytes || len % 4 != 0) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "vCPU state: xsave record of %u bytes (must be a multiple of 4 in [%u, %u])", len,
            sizeof(kvm_xsave), kMaxXsaveBytes));
      }
      st->xsave.assign(p, p + len);
      return absl::OkStatus();
    case kXcrs:
      st->has_xcrs = true;
      return GetStruct(p, len, "xcrs", &st->xcrs);
    case kLapic:
      st->has_lapic = true;
      return GetStruct(p, len, "lapic", &st->lapic);
    case kMsrs:
      return GetArray(p, len, kMaxMsrs, "msrs", &st->msrs);
    case kMpState:
      return GetStruct(p, len, "mp_state", &st->mp_state);
    case kEvents:
      return GetStruct(p, len, "vcpu_events", &st->events);
    case kDebugRegs:
      return GetStruct(p, len, "debugregs", &st->debugregs);
    default:
      return absl::InvalidArgumentError(
          absl::StrFormat("vCPU state: unknown record tag %u (written by a newer version?)", tag));
  }
}

}  // namespace

std::vector<uint8_t> SerializeVcpuState(const VcpuState& st) {
  std::vector<uint8_t> out(kMagic, kMagic + sizeof(kMagic));
  PutU32(out, kVersion);
  size_t count_at = out.size();
  PutU32(out, 0);
  uint32_t count = 0;
  PutRecord(out, kCpuid, st.cpuid.data(), st.cpuid.size() * sizeof(kvm_cpuid_entry2));
  ++count;
  PutStruct(out, kRegs, st.regs, &count);
  PutStruct(out, kSregs, st.sregs, &count);
  if (st.has_sregs2) PutStruct(out, kSregs2, st.sregs2, &count);
  PutStruct(out, kFpu, st.fpu, &count);
  if (!st.xsave.empty()) {
    PutRecord(out, kXsave, st.xsave.data(), st.xsave.size());
    ++count;
  }
  if (st.has_xcrs) PutStruct(out, kXcrs, st.xcrs, &count);
  if (st.has_lapic) PutStruct(out, kLapic, st.lapic, &count);
  PutRecord(out, kMsrs, st.msrs.data(), st.msrs.size() * sizeof(kvm_msr_entry));
  ++count;
  PutStruct(out, kMpState, st.mp_state, &count);
  PutStruct(out, kEvents, st.events, &count);
  PutStruct(out, kDebugRegs, st.debugregs, &count);
  std::memcpy(out.data() + count_at, &count, 4);
  return out;
}

absl::StatusOr<VcpuState> DeserializeVcpuState(absl::Span<const uint8_t> bytes) {
  const size_t header = sizeof(kMagic) + 8;
  if (bytes.size() < header) {
    return absl::DataLossError(
        absl::StrFormat("vCPU state: %u bytes is shorter than the header", bytes.size()));
  }
  if (std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    return absl::InvalidArgumentError("vCPU state: bad magic (not an amalgam vCPU state)");
  }
  uint32_t version, count;
  std::memcpy(&version, bytes.data() + 8, 4);
  std::memcpy(&count, bytes.data() + 12, 4);
  if (version != kVersion) {
    return absl::UnimplementedError(
        absl::StrFormat("vCPU state: format version %u, this build reads %u", version, kVersion));
  }
  if (count > kMaxRecords) {
    return absl::InvalidArgumentError(
        absl::StrFormat("vCPU state: %u records (max %u)", count, kMaxRecords));
  }
  VcpuState st;
  std::set<uint32_t> seen;
  size_t pos = header;
  for (uint32_t i = 0; i < count; ++i) {
    if (bytes.size() - pos < 8) {
      return absl::DataLossError(absl::StrFormat("vCPU state: truncated in record %u header", i));
    }
    uint32_t tag, len;
    std::memcpy(&tag, bytes.data() + pos, 4);
    std::memcpy(&len, bytes.data() + pos + 4, 4);
    pos += 8;
    // len + 4 cannot overflow size_t; compare against what is left.
    if (bytes.size() - pos < static_cast<size_t>(len) + 4) {
      return absl::DataLossError(
          absl::StrFormat("vCPU state: record %u (tag %u) claims %u bytes, only %u left", i, tag,
                          len, bytes.size() - pos));
    }
    const uint8_t* payload = bytes.data() + pos;
    uint32_t crc;
    std::memcpy(&crc, payload + len, 4);
    if (crc != RecordCrc(tag, len, payload)) {
      return absl::DataLossError(
          absl::StrFormat("vCPU state: record %u (tag %u) fails its checksum", i, tag));
    }
    if (!seen.insert(tag).second) {
      return absl::InvalidArgumentError(
          absl::StrFormat("vCPU state: record tag %u appears twice", tag));
    }
    if (absl::Status s = ParseRecord(tag, payload, len, &st); !s.ok()) return s;
    pos += static_cast<size_t>(len) + 4;
  }
  if (pos != bytes.size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("vCPU state: %u trailing bytes after the last record", bytes.size() - pos));
  }
  for (uint32_t tag : kRequired) {
    if (seen.count(tag) == 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("vCPU state: required record tag %u is missing", tag));
    }
  }
  return st;
}

}  // namespace amalgam::vcpu
