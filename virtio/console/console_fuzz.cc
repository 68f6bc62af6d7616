// libFuzzer target: virtio-console transmit and receive chains of any shape.
#include <cstring>

#include "virtio/console/console_device.h"
#include "virtio/testing/fuzz_chain.h"

namespace {
using amalgam::memory::GuestAddress;
constexpr uint64_t kRam = 1 << 20;

class NullSink : public amalgam::virtio::console::ConsoleSink {
 public:
  void Write(absl::Span<const uint8_t> b) override { bytes += b.size(); }
  uint64_t bytes = 0;
};

amalgam::memory::GuestMemory& Mem() {
  static auto* mem =
      amalgam::memory::GuestMemory::Create({{GuestAddress(0), kRam}}).value().release();
  return *mem;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  auto& mem = Mem();
  memset(mem.regions()[0].host_address(), 0, kRam);
  const bool receive = data[0] & 0x80;
  amalgam::virtio::testing::TestDriver drv(mem, 0x1000, 8);
  amalgam::virtio::Queue q(64);
  drv.Configure(q);
  if (!amalgam::virtio::testing::PostFuzzedChain(mem, drv, 0x10000, data, size)) return 0;
  amalgam::virtio::console::ConsoleDevice dev(std::make_shared<NullSink>());
  if (receive) {
    const uint8_t input[100] = {1, 2, 3};
    dev.QueueInput(absl::MakeConstSpan(input));
  }
  (void)dev.ProcessQueue(receive ? 0 : 1, mem, q);
  return 0;
}
