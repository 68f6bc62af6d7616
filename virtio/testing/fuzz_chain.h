// PostFuzzedChain: turns fuzzer bytes into one descriptor chain posted on a TestDriver: a
// segment count, then 3 bytes per segment (u16 length, direction bit), then the bytes the
// segments point at. Shared by the device request fuzzers. Thread-safety: not thread-safe.
#ifndef AMALGAM_VIRTIO_TESTING_FUZZ_CHAIN_H_
#define AMALGAM_VIRTIO_TESTING_FUZZ_CHAIN_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "virtio/testing/test_driver.h"

namespace amalgam::virtio::testing {

// Data segments start at `data_base` and must fit in the memory (64 KiB max per segment).
// Returns false when the input is too short to make a chain.
inline bool PostFuzzedChain(memory::GuestMemory& mem, TestDriver& drv, uint64_t data_base,
                            const uint8_t* data, size_t size) {
  if (size < 1) return false;
  const int nsegs = 1 + (data[0] & 7);
  data++;
  size--;
  std::vector<Seg> segs;
  uint64_t cursor = data_base;
  for (int i = 0; i < nsegs && size >= 3; ++i) {
    const uint32_t len = data[0] | (uint32_t{data[1]} << 8);
    segs.push_back({cursor, len, (data[2] & 1) != 0});
    cursor += len;
    data += 3;
    size -= 3;
  }
  if (segs.empty()) return false;
  const uint64_t room = mem.regions()[0].size() - data_base;
  memcpy(mem.regions()[0].host_address() + data_base, data, size < room ? size : room);
  drv.AddChain(segs);
  return true;
}

}  // namespace amalgam::virtio::testing

#endif  // AMALGAM_VIRTIO_TESTING_FUZZ_CHAIN_H_
