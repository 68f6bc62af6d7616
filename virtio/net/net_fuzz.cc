// libFuzzer target: virtio-net transmit and receive chains of any shape, and frames of any
// length from the backend.
#include <cstring>

#include "virtio/net/fake_net_backend.h"
#include "virtio/net/net_device.h"
#include "virtio/testing/fuzz_chain.h"

namespace {
using amalgam::memory::GuestAddress;
constexpr uint64_t kRam = 1 << 20;

amalgam::memory::GuestMemory& Mem() {
  static auto* mem =
      amalgam::memory::GuestMemory::Create({{GuestAddress(0), kRam}}).value().release();
  return *mem;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  auto& mem = Mem();
  memset(mem.regions()[0].host_address(), 0, kRam);
  const bool receive = data[0] & 0x80;
  const size_t frame_len = data[1] | (static_cast<size_t>(data[2] & 0x7f) << 8);
  data += 2;
  size -= 2;
  amalgam::virtio::testing::TestDriver drv(mem, 0x1000, 8);
  amalgam::virtio::Queue q(amalgam::virtio::net::kNetQueueSize);
  drv.Configure(q);
  if (!amalgam::virtio::testing::PostFuzzedChain(mem, drv, 0x10000, data, size)) return 0;
  auto* backend = new amalgam::virtio::net::FakeNetBackend;
  backend->incoming.push_back(std::vector<uint8_t>(frame_len, 0x77));
  amalgam::virtio::net::NetDevice dev(std::unique_ptr<amalgam::virtio::net::NetBackend>(backend),
                                      {2, 0, 0, 0, 0, 1});
  (void)dev.ProcessQueue(receive ? 0 : 1, mem, q);
  return 0;
}
