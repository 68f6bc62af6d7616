// libFuzzer target for DeserializeVcpuState: arbitrary bytes must never crash it, and anything
// it accepts must re-serialize to a state it accepts again, byte for byte.
//
// Inputs whose first byte is odd are "repaired" first: the header is forced valid and each
// record's CRC is recomputed, so the fuzzer explores record parsing instead of dying at the
// checksum.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "vcpu/vcpu_state.h"

namespace {

uint32_t Crc32(uint32_t crc, const uint8_t* p, size_t n) {
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

std::vector<uint8_t> Repair(const uint8_t* data, size_t size) {
  std::vector<uint8_t> buf = {'A', 'M', 'V', 'C', 'P', 'U', 'S', 'T', 1, 0, 0, 0};
  buf.insert(buf.end(), data, data + size);
  if (buf.size() < 16) return buf;
  size_t pos = 16;
  while (buf.size() - pos >= 8) {
    uint32_t len;
    std::memcpy(&len, buf.data() + pos + 4, 4);
    if (buf.size() - pos - 8 < static_cast<size_t>(len) + 4) break;
    uint32_t crc = Crc32(Crc32(0, buf.data() + pos, 8), buf.data() + pos + 8, len);
    std::memcpy(buf.data() + pos + 8 + len, &crc, 4);
    pos += 8 + static_cast<size_t>(len) + 4;
  }
  return buf;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> input;
  if (size > 0 && (data[0] & 1)) {
    input = Repair(data + 1, size - 1);
  } else {
    input.assign(data, data + size);
  }
  auto state = amalgam::vcpu::DeserializeVcpuState(input);
  if (!state.ok()) return 0;
  std::vector<uint8_t> again = amalgam::vcpu::SerializeVcpuState(*state);
  auto reparsed = amalgam::vcpu::DeserializeVcpuState(again);
  if (!reparsed.ok()) std::abort();
  if (amalgam::vcpu::SerializeVcpuState(*reparsed) != again) std::abort();
  return 0;
}
