// libFuzzer target: virtio-rng requests of any shape (readable, writable, empty, huge).
#include <cstring>

#include "virtio/rng/rng_device.h"
#include "virtio/testing/fuzz_chain.h"

namespace {
using amalgam::memory::GuestAddress;
constexpr uint64_t kRam = 1 << 20;  // the chain can reach 8 * 64 KiB past the data base

class CountingSource : public amalgam::virtio::rng::EntropySource {
 public:
  absl::Status Fill(absl::Span<uint8_t> out) override {
    for (uint8_t& b : out) b = static_cast<uint8_t>(n_++);
    return absl::OkStatus();
  }
  uint64_t n_ = 0;
};

amalgam::memory::GuestMemory& Mem() {
  static auto* mem =
      amalgam::memory::GuestMemory::Create({{GuestAddress(0), kRam}}).value().release();
  return *mem;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto& mem = Mem();
  memset(mem.regions()[0].host_address(), 0, kRam);
  amalgam::virtio::testing::TestDriver drv(mem, 0x1000, 8);
  amalgam::virtio::Queue q(64);
  drv.Configure(q);
  if (!amalgam::virtio::testing::PostFuzzedChain(mem, drv, 0x10000, data, size)) return 0;
  amalgam::virtio::rng::RngDevice dev(std::make_unique<CountingSource>());
  (void)dev.ProcessQueue(0, mem, q);
  return 0;
}
