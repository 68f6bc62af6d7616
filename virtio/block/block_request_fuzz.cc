// libFuzzer target: virtio-blk request parsing. The input supplies the request header, the
// data and the shape of the descriptor chain (segment lengths and directions); the device runs
// it against an in-memory backend. Any input must end in a status byte or a device error.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "virtio/block/block_device.h"
#include "virtio/testing/test_driver.h"

namespace {

using amalgam::memory::GuestAddress;

class MemBackend : public amalgam::virtio::block::BlockBackend {
 public:
  explicit MemBackend(bool ro) : ro_(ro), data_(64 * 512) {}
  uint64_t size_bytes() const override { return data_.size(); }
  bool read_only() const override { return ro_; }
  bool supports_discard() const override { return !ro_; }
  std::string id() const override { return "fuzz"; }
  absl::Status ReadAt(uint64_t off, absl::Span<uint8_t> out) override {
    if (off > data_.size() || out.size() > data_.size() - off) abort();  // device must check
    memcpy(out.data(), data_.data() + off, out.size());
    return absl::OkStatus();
  }
  absl::Status WriteAt(uint64_t off, absl::Span<const uint8_t> in) override {
    if (ro_ || off > data_.size() || in.size() > data_.size() - off) abort();
    memcpy(data_.data() + off, in.data(), in.size());
    return absl::OkStatus();
  }
  absl::Status Flush() override { return absl::OkStatus(); }
  absl::Status Discard(uint64_t off, uint64_t len) override {
    if (off > data_.size() || len > data_.size() - off) abort();
    memset(data_.data() + off, 0, len);
    return absl::OkStatus();
  }

 private:
  bool ro_;
  std::vector<uint8_t> data_;
};

constexpr uint64_t kRam = 256 * 1024;
constexpr uint64_t kData = 0x10000;

amalgam::memory::GuestMemory& Mem() {
  static auto* mem =
      amalgam::memory::GuestMemory::Create({{GuestAddress(0), kRam}}).value().release();
  return *mem;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  auto& mem = Mem();
  memset(mem.regions()[0].host_address(), 0, kRam);
  const uint8_t nsegs = 1 + (data[0] & 7);
  const bool ro = data[0] & 8;
  data++;
  size--;
  // Segment shapes: 3 bytes each (u16 length, direction).
  std::vector<amalgam::virtio::testing::Seg> segs;
  uint64_t cursor = kData;
  for (int i = 0; i < nsegs && size >= 3; ++i) {
    uint32_t len = data[0] | (uint32_t{data[1]} << 8);
    segs.push_back({cursor, len, (data[2] & 1) != 0});
    cursor += len;
    data += 3;
    size -= 3;
  }
  if (segs.empty()) return 0;
  // The rest is the bytes the chain points at (header, data, discard segments).
  memcpy(mem.regions()[0].host_address() + kData, data, std::min<size_t>(size, kRam - kData));
  amalgam::virtio::testing::TestDriver drv(mem, 0x1000, 8);
  amalgam::virtio::Queue q(8);
  drv.Configure(q);
  amalgam::virtio::block::BlockDevice dev(std::make_unique<MemBackend>(ro));
  drv.AddChain(segs);
  (void)dev.ProcessQueue(0, mem, q);
  return 0;
}
