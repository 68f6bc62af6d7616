// The library metrics sources over real objects: an in-process fabric transport pair, fabric
// drop counters, a real userfaultfd page-fault service, a virtio-mmio transport with a device.
#include "vmm/api/library_metrics.h"

#include <catch2/catch.hpp>

#include "fabric/inprocess_transport.h"
#include "fabric/test_pages.h"
#include "memory/fault_test_handler.h"
#include "memory/fault_testutil.h"
#include "virtio/rng/rng_device.h"

namespace amalgam::vmm::api {
namespace {

// The value of the sample called `name` whose labels include every (key, value) of `want`.
std::optional<double> Find(const MetricSamples& samples, const std::string& name,
                           const MetricLabels& want = {}) {
  for (const MetricSample& s : samples) {
    if (s.name != name) continue;
    bool all = true;
    for (const auto& w : want) {
      all = all && std::find(s.labels.begin(), s.labels.end(), w) != s.labels.end();
    }
    if (all) return s.value;
  }
  return std::nullopt;
}

TEST_CASE("fabric: a transport's frames, bytes and drops by reason, with the caller's labels") {
  fabric::InProcessHub hub(fabric::FrameKey::Generate());
  auto a = hub.Connect(0);
  auto b = hub.Connect(1);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  auto msg = fabric::testing::PageGrant(7);
  const auto page = fabric::testing::PagePattern(7);
  REQUIRE((*a)->SendFrame(1, msg.Frame(page)).ok());
  REQUIRE((*b)->Receive(absl::Seconds(30)).ok());

  MetricsRegistry registry;
  ScopedMetricsSource sa(&registry, TransportMetrics(a->get(), {{"node", "0"}}));
  ScopedMetricsSource sb(&registry, TransportMetrics(b->get(), {{"node", "1"}}));
  const MetricSamples got = registry.Collect();
  CHECK(Find(got, "amalgam_fabric_frames_sent_total", {{"node", "0"}}) == 1.0);
  CHECK(Find(got, "amalgam_fabric_frames_received_total", {{"node", "1"}}) == 1.0);
  CHECK(Find(got, "amalgam_fabric_bytes_sent_total", {{"node", "0"}}).value_or(0) > 4096);
  CHECK(Find(got, "amalgam_fabric_dropped_frames_total", {{"node", "1"}, {"reason", "bad_mac"}}) ==
        0.0);
}

TEST_CASE("fabric: standalone drop counters, one sample per reason") {
  fabric::DropCounters drops;
  drops.Count(fabric::DropReason::kLateReply, 2);
  MetricSamples got;
  DropCountersMetrics(&drops, {{"layer", "rpc"}})->Collect(&got);
  CHECK(got.size() == static_cast<size_t>(fabric::kDropReasonCount));
  CHECK(Find(got, "amalgam_fabric_dropped_frames_total",
             {{"layer", "rpc"},
              {"reason", fabric::DropReasonName(fabric::DropReason::kLateReply)}}) == 2.0);
}

TEST_CASE("memory: a real userfaultfd service's faults and latency buckets") {
  auto mem = memory::testing::MakeTestMemory(4);
  memory::testing::RecordingFaultHandler handler;
  memory::PageFaultService* svc = nullptr;
  handler.set_react([&svc](const memory::PageFault& f) { return svc->InstallZeroShared(f.gpa); });
  auto service = memory::testing::StartService(mem.get(), &handler);
  svc = service.get();
  volatile uint8_t* p = mem->regions()[0].host_address();
  (void)p[0];  // a missing-page read fault, served by the service thread
  REQUIRE(memory::testing::WaitMetric(*service, "faults_missing_read", 1));
  REQUIRE(memory::testing::WaitMetric(*service, "fault_service_count", 1));
  MetricSamples got;
  PageFaultServiceMetrics(service.get(), {{"node", "0"}})->Collect(&got);
  CHECK(Find(got, "amalgam_memory_uffd_faults_missing_read_total", {{"node", "0"}}) >= 1.0);
  double buckets = 0;
  for (const MetricSample& s : got) {
    if (s.name == "amalgam_memory_uffd_fault_service_faults_total") buckets += s.value;
  }
  CHECK(buckets >= 1.0);
  CHECK(Find(got, "amalgam_memory_uffd_fault_service_faults_total", {{"bucket_us", "inf"}}));
  service->Shutdown();
}

TEST_CASE("directory: counters read through the owner's function") {
  MetricSamples got;
  DirectoryMetrics([] { return NamedCounters{{"placement_migrations", 4}}; })->Collect(&got);
  CHECK(Find(got, "amalgam_directory_placement_migrations_total") == 4.0);
}

TEST_CASE("virtio: transport and device counters labelled by device id and kind") {
  auto mem = memory::testing::MakeTestMemory(16);
  auto src = virtio::rng::UrandomSource::Open();
  REQUIRE(src.ok());
  virtio::MmioTransport t(std::make_unique<virtio::rng::RngDevice>(std::move(*src)), mem.get(),
                          nullptr);
  t.HandleNotify(0);  // before DRIVER_OK: counted, ignored
  MetricSamples got;
  AppendVirtioMetrics(t, "rng0", "rng", &got);
  CHECK(Find(got, "amalgam_virtio_notifications_total", {{"device", "rng0"}, {"kind", "rng"}}) ==
        1.0);
  CHECK(Find(got, "amalgam_virtio_device_errors_total") == 0.0);
  CHECK(Find(got, "amalgam_virtio_served_bytes_total") == 0.0);
}

}  // namespace
}  // namespace amalgam::vmm::api
