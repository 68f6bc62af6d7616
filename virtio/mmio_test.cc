#include "virtio/mmio.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>

#include "virtio/chain_io.h"
#include "virtio/drain.h"
#include "virtio/testing/test_driver.h"
#include "virtio/virtio_ids.h"

namespace amalgam::virtio {
namespace {

using testing::TestDriver;

constexpr uint64_t kRings = 0x1000;
constexpr uint64_t kData = 0x10000;

class CountingIrq : public InterruptLine {
 public:
  void Trigger() override { ++count; }
  std::atomic<int> count{0};
};

// Copies each chain's readable bytes into its writable bytes (a pure-logic device, so the
// transport can be tested on its own).
class EchoDevice : public VirtioDevice {
 public:
  uint32_t device_id() const override { return 42; }
  uint64_t device_features() const override { return FeatureBit(3); }
  std::vector<uint16_t> queue_max_sizes() const override { return {16, 8}; }
  void ReadConfig(uint64_t offset, absl::Span<uint8_t> data) const override {
    for (size_t i = 0; i < data.size(); ++i) {
      data[i] = offset + i < sizeof(config) ? config[offset + i] : 0;
    }
  }
  absl::Status Activate(uint64_t features) override {
    activated_features = features;
    return absl::OkStatus();
  }
  absl::Status ProcessQueue(size_t, memory::GuestMemory& mem, Queue& q) override {
    return DrainQueue(mem, q, [&](const DescriptorChain& c) -> absl::StatusOr<uint32_t> {
      std::vector<uint8_t> buf(c.readable_bytes);
      ChainReader r(mem, c);
      if (absl::Status s = r.Read(absl::MakeSpan(buf)); !s.ok()) return s;
      ChainWriter w(mem, c);
      if (absl::Status s = w.Write(buf); !s.ok()) return s;
      return w.written();
    });
  }
  void Reset() override { ++resets; }
  std::vector<DeviceCounter> Counters() const override { return {{"echoes", "test", 7}}; }
  uint8_t config[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  uint64_t activated_features = 0;
  int resets = 0;
};

struct Fixture {
  std::unique_ptr<GuestMemory> mem = GuestMemory::Create({{GuestAddress(0), 1 << 20}}).value();
  CountingIrq irq;
  EchoDevice* dev = new EchoDevice;
  MmioTransport t{std::unique_ptr<VirtioDevice>(dev), mem.get(), &irq};
  TestDriver drv{*mem, kRings, 8};

  uint32_t R(uint64_t off) {
    uint32_t v;
    t.Read(off, absl::MakeSpan(reinterpret_cast<uint8_t*>(&v), 4));
    return v;
  }
  void W(uint64_t off, uint32_t v) {
    t.Write(off, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&v), 4));
  }
  void Negotiate(uint64_t features) {
    W(kRegStatus, kStatusAcknowledge);
    W(kRegStatus, kStatusAcknowledge | kStatusDriver);
    W(kRegDriverFeaturesSel, 0);
    W(kRegDriverFeatures, static_cast<uint32_t>(features));
    W(kRegDriverFeaturesSel, 1);
    W(kRegDriverFeatures, static_cast<uint32_t>(features >> 32));
    W(kRegStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
  }
  void SetUpQueue0(const TestDriver& d) {
    W(kRegQueueSel, 0);
    W(kRegQueueNum, d.size());
    W(kRegQueueDescLow, static_cast<uint32_t>(d.desc_table()));
    W(kRegQueueDescHigh, static_cast<uint32_t>(d.desc_table() >> 32));
    W(kRegQueueDriverLow, static_cast<uint32_t>(d.avail_ring()));
    W(kRegQueueDriverHigh, 0);
    W(kRegQueueDeviceLow, static_cast<uint32_t>(d.used_ring()));
    W(kRegQueueDeviceHigh, 0);
    W(kRegQueueReady, 1);
  }
  void Up() {
    Negotiate(FeatureBit(kFeatureVersion1) | FeatureBit(3));
    REQUIRE((R(kRegStatus) & kStatusFeaturesOk) != 0);
    SetUpQueue0(drv);
    REQUIRE(R(kRegQueueReady) == 1);
    W(kRegStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);
  }
};

TEST_CASE("identification registers") {
  Fixture f;
  CHECK(f.R(kRegMagic) == 0x74726976);
  CHECK(f.R(kRegVersion) == 2);
  CHECK(f.R(kRegDeviceId) == 42);
  CHECK(f.R(kRegVendorId) == kMmioVendorId);
  f.W(kRegQueueSel, 1);
  CHECK(f.R(kRegQueueNumMax) == 8);
  f.W(kRegQueueSel, 2);
  CHECK(f.R(kRegQueueNumMax) == 0);  // no such queue
}

TEST_CASE("device features are offered in two pages, with VERSION_1 and ring features") {
  Fixture f;
  f.W(kRegDeviceFeaturesSel, 0);
  const uint32_t lo = f.R(kRegDeviceFeatures);
  f.W(kRegDeviceFeaturesSel, 1);
  const uint32_t hi = f.R(kRegDeviceFeatures);
  CHECK(lo == (1u << 3 | 1u << kFeatureRingIndirectDesc | 1u << kFeatureRingEventIdx));
  CHECK(hi == 1u);  // VERSION_1 is bit 32
  f.W(kRegDeviceFeaturesSel, 2);
  CHECK(f.R(kRegDeviceFeatures) == 0);
}

TEST_CASE("FEATURES_OK is refused without VERSION_1 or with unoffered bits") {
  Fixture f;
  f.Negotiate(FeatureBit(3));  // a legacy driver
  CHECK((f.R(kRegStatus) & kStatusFeaturesOk) == 0);
  f.W(kRegStatus, 0);
  f.Negotiate(FeatureBit(kFeatureVersion1) | FeatureBit(7));
  CHECK((f.R(kRegStatus) & kStatusFeaturesOk) == 0);
  f.W(kRegStatus, 0);
  f.Negotiate(FeatureBit(kFeatureVersion1));
  CHECK((f.R(kRegStatus) & kStatusFeaturesOk) != 0);
}

TEST_CASE("notify processes the queue, raises the interrupt, ACK clears it") {
  Fixture f;
  f.Up();
  CHECK(f.dev->activated_features == (FeatureBit(kFeatureVersion1) | FeatureBit(3)));
  const char msg[] = "hello";
  REQUIRE(f.mem
              ->Write(GuestAddress(kData),
                      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(msg), 5))
              .ok());
  uint16_t head = f.drv.AddChain({{kData, 5, false}, {kData + 0x100, 16, true}});
  f.W(kRegQueueNotify, 0);
  CHECK(f.drv.UsedIdx() == 1);
  CHECK(f.drv.UsedElem(0) == std::make_pair(uint32_t{head}, uint32_t{5}));
  char out[6] = {};
  REQUIRE(
      f.mem->Read(GuestAddress(kData + 0x100), absl::MakeSpan(reinterpret_cast<uint8_t*>(out), 5))
          .ok());
  CHECK(std::string(out) == "hello");
  CHECK(f.irq.count == 1);
  CHECK(f.R(kRegInterruptStatus) == kInterruptUsedRing);
  f.W(kRegInterruptAck, kInterruptUsedRing);
  CHECK(f.R(kRegInterruptStatus) == 0);
}

TEST_CASE("queue registers are frozen once the queue is ready") {
  Fixture f;
  f.Up();
  f.W(kRegQueueSel, 0);
  f.W(kRegQueueDescLow, 0xdead0000);
  f.drv.AddChain({{kData, 1, false}, {kData + 0x100, 1, true}});
  f.W(kRegQueueNotify, 0);
  CHECK(f.drv.UsedIdx() == 1);  // still the original table
  CHECK(f.t.device_errors() == 0);
}

TEST_CASE("a used ring outside guest RAM is a device error at QueueReady") {
  Fixture f;
  f.Negotiate(FeatureBit(kFeatureVersion1));
  f.W(kRegQueueSel, 0);
  f.W(kRegQueueNum, 8);
  f.W(kRegQueueDescLow, kRings);
  f.W(kRegQueueDriverLow, kRings + 0x200);
  f.W(kRegQueueDeviceLow, 0xfffff000);  // far beyond the 1 MiB of RAM
  f.W(kRegQueueReady, 1);
  CHECK(f.R(kRegQueueReady) == 0);
  CHECK((f.R(kRegStatus) & kStatusDeviceNeedsReset) != 0);
  CHECK(f.R(kRegInterruptStatus) == kInterruptConfigChange);
  CHECK(f.t.device_errors() == 1);
  CHECK(f.t.last_error().find("used ring") != std::string::npos);
}

TEST_CASE("a hostile chain stops the device until reset; reset recovers it") {
  Fixture f;
  f.Up();
  f.drv.SetDesc(0, kData, 4, kDescFlagNext, 0);  // self loop
  f.drv.Post(0);
  f.W(kRegQueueNotify, 0);
  CHECK((f.R(kRegStatus) & kStatusDeviceNeedsReset) != 0);
  CHECK(f.t.device_errors() == 1);
  CHECK(f.t.last_error().find("queue 0") != std::string::npos);
  f.W(kRegQueueNotify, 0);  // ignored while broken
  CHECK(f.t.device_errors() == 1);

  f.W(kRegStatus, 0);
  CHECK(f.R(kRegStatus) == 0);
  CHECK(f.dev->resets == 1);
  f.W(kRegQueueSel, 0);
  CHECK(f.R(kRegQueueReady) == 0);
  TestDriver fresh(*f.mem, 0x4000, 8);
  f.Negotiate(FeatureBit(kFeatureVersion1));
  f.SetUpQueue0(fresh);
  f.W(kRegStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);
  fresh.AddChain({{kData, 2, false}, {kData + 0x100, 2, true}});
  f.W(kRegQueueNotify, 0);
  CHECK(fresh.UsedIdx() == 1);
}

std::optional<uint64_t> CounterValue(const MmioTransport& t, const std::string& name) {
  return FindCounter(t.Counters(), name);
}

TEST_CASE("counters: notifications, interrupts, device errors, then the device's own") {
  Fixture f;
  CHECK(CounterValue(f.t, "notifications") == 0);
  f.Up();
  f.drv.AddChain({{kData, 1, false}, {kData + 0x100, 1, true}});
  f.W(kRegQueueNotify, 0);
  f.t.HandleNotify(0);  // the ioeventfd path: nothing new to do, still a notification
  CHECK(CounterValue(f.t, "notifications") == 2);
  CHECK(CounterValue(f.t, "interrupts") == 1);
  CHECK(CounterValue(f.t, "config_interrupts") == 0);
  CHECK(CounterValue(f.t, "device_errors") == 0);
  CHECK(CounterValue(f.t, "echoes") == 7);

  f.drv.SetDesc(0, kData, 4, kDescFlagNext, 0);  // a malformed (looping) chain
  f.drv.Post(0);
  f.W(kRegQueueNotify, 0);
  CHECK(CounterValue(f.t, "device_errors") == 1);
  CHECK(CounterValue(f.t, "config_interrupts") == 1);
  CHECK(f.irq.count == 2);
}

TEST_CASE("config space reads at any width; bad register widths are ignored") {
  Fixture f;
  uint8_t b[3];
  f.t.Read(kRegConfig + 2, absl::MakeSpan(b));
  CHECK(b[0] == 3);
  CHECK(b[2] == 5);
  uint8_t two[2] = {0xff, 0xff};
  f.t.Read(kRegMagic, absl::MakeSpan(two));
  CHECK(two[0] == 0);
  f.W(kRegStatus, kStatusAcknowledge);
  uint8_t one = 0;
  f.t.Write(kRegStatus, absl::MakeConstSpan(&one, 1));
  CHECK(f.R(kRegStatus) == kStatusAcknowledge);
  CHECK(f.R(kRegConfigGeneration) == 0);
  f.t.NotifyConfigChange();
  CHECK(f.R(kRegConfigGeneration) == 1);
}

TEST_CASE("notify before DRIVER_OK, without FEATURES_OK, or for a missing queue does nothing") {
  Fixture f;
  f.drv.AddChain({{kData, 1, false}});
  f.W(kRegQueueNotify, 0);
  f.Negotiate(FeatureBit(3));  // legacy driver: FEATURES_OK refused, then DRIVER_OK anyway
  f.SetUpQueue0(f.drv);
  f.W(kRegStatus, kStatusAcknowledge | kStatusDriver | kStatusDriverOk);
  f.W(kRegQueueNotify, 0);
  f.W(kRegQueueNotify, 7);
  f.t.HandleNotify(0xffffffff);
  CHECK(f.drv.UsedIdx() == 0);
  CHECK(f.t.device_errors() == 0);
}

}  // namespace
}  // namespace amalgam::virtio
