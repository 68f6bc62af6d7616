#include "virtio/net/net_device.h"

#include <catch2/catch.hpp>

#include "virtio/net/fake_net_backend.h"
#include "virtio/testing/test_driver.h"
#include "virtio/virtio_ids.h"

namespace amalgam::virtio::net {
namespace {

struct Fixture {
  std::unique_ptr<GuestMemory> mem = GuestMemory::Create({{GuestAddress(0), 1 << 20}}).value();
  FakeNetBackend* backend = new FakeNetBackend;
  NetDevice dev{std::unique_ptr<NetBackend>(backend), {2, 0x41, 0x4d, 0, 0, 1}};
  testing::TestDriver rx{*mem, 0x1000, 8};
  testing::TestDriver tx{*mem, 0x4000, 8};
  Queue rxq{kNetQueueSize}, txq{kNetQueueSize};
  Fixture() {
    rx.Configure(rxq);
    tx.Configure(txq);
  }
};

TEST_CASE("features follow the backend; config holds the MAC") {
  Fixture f;
  CHECK(f.dev.device_features() == FeatureBit(kFeatureMac));  // a backend without offloads
  f.backend->supported = {true, true, false};
  const uint64_t feat = f.dev.device_features();
  CHECK((feat & FeatureBit(kFeatureGuestCsum)) != 0);
  CHECK((feat & FeatureBit(kFeatureGuestTso4)) != 0);
  CHECK((feat & FeatureBit(kFeatureGuestTso6)) == 0);
  uint8_t mac[6];
  f.dev.ReadConfig(0, absl::MakeSpan(mac));
  CHECK(mac[1] == 0x41);
  CHECK(mac[5] == 1);
}

TEST_CASE("Activate enables on the backend only what the driver accepted") {
  Fixture f;
  f.backend->supported = {true, true, true};
  REQUIRE(f.dev.Activate(FeatureBit(kFeatureGuestCsum) | FeatureBit(kFeatureGuestTso4)).ok());
  CHECK(f.backend->enabled.csum);
  CHECK(f.backend->enabled.tso4);
  CHECK(!f.backend->enabled.tso6);
  CHECK(!f.dev.Activate(FeatureBit(kFeatureGuestTso4)).ok());  // TSO without CSUM
}

TEST_CASE("transmit gathers header and frame across descriptors") {
  Fixture f;
  std::vector<uint8_t> hdr(12, 0), frame(60, 0xab);
  REQUIRE(f.mem->Write(GuestAddress(0x10000), hdr).ok());
  REQUIRE(f.mem->Write(GuestAddress(0x20000), frame).ok());
  f.tx.AddChain({{0x10000, 12, false}, {0x20000, 60, false}});
  f.tx.AddChain({{0x10000, 4, false}});  // shorter than a vnet header: dropped, not an error
  REQUIRE(f.dev.ProcessQueue(1, *f.mem, f.txq).ok());
  REQUIRE(f.backend->sent.size() == 1);
  CHECK(f.backend->sent[0].size() == 72);
  CHECK(f.backend->sent[0][71] == 0xab);
  CHECK(f.dev.stats().tx_dropped == 1);
  CHECK(FindCounter(f.dev.Counters(), "tx_frames") == 1u);
  CHECK(FindCounter(f.dev.Counters(), "tx_bytes") == 72u);
  CHECK(FindCounter(f.dev.Counters(), "tx_dropped") == 1u);
  CHECK(f.tx.UsedIdx() == 2);
}

TEST_CASE("receive waits for a buffer, sets num_buffers, drops what does not fit") {
  Fixture f;
  std::vector<uint8_t> in(12 + 60, 0x5a);
  f.backend->incoming.push_back(in);
  REQUIRE(f.dev.ProcessQueue(0, *f.mem, f.rxq).ok());  // no buffer: the frame waits
  CHECK(f.rx.UsedIdx() == 0);
  f.rx.AddChain({{0x10000, 2048, true}});
  REQUIRE(f.dev.ProcessQueue(0, *f.mem, f.rxq).ok());
  CHECK(f.rx.UsedIdx() == 1);
  CHECK(f.rx.UsedElem(0).second == 72);
  CHECK(f.mem->ReadObj<uint16_t>(GuestAddress(0x10000 + 10)).value() == 1);
  CHECK(f.mem->ReadObj<uint8_t>(GuestAddress(0x10000 + 71)).value() == 0x5a);

  f.backend->incoming.push_back(std::vector<uint8_t>(1500, 1));
  f.rx.AddChain({{0x20000, 100, true}});
  REQUIRE(f.dev.ProcessQueue(0, *f.mem, f.rxq).ok());
  CHECK(f.rx.UsedElem(1).second == 0);
  CHECK(f.dev.stats().rx_dropped == 1);
  CHECK(f.dev.stats().rx_frames == 1);
  CHECK(FindCounter(f.dev.Counters(), "rx_bytes") == 72u);
  CHECK(FindCounter(f.dev.Counters(), "rx_dropped") == 1u);
}

TEST_CASE("hostile: a receive chain outside RAM is a device error") {
  Fixture f;
  f.backend->incoming.push_back(std::vector<uint8_t>(64, 1));
  f.rx.AddChain({{(1 << 20) - 8, 64, true}});
  CHECK(!f.dev.ProcessQueue(0, *f.mem, f.rxq).ok());
}

}  // namespace
}  // namespace amalgam::virtio::net
