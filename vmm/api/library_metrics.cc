#include "vmm/api/library_metrics.h"

#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace amalgam::vmm::api {
namespace {

MetricLabels With(MetricLabels labels, std::string key, std::string value) {
  labels.emplace_back(std::move(key), std::move(value));
  return labels;
}

MetricSample Counter(std::string name, std::string library, std::string help, MetricLabels labels,
                     uint64_t value) {
  MetricSample s;
  s.name = std::move(name);
  s.library = std::move(library);
  s.help = std::move(help);
  s.kind = MetricKind::kCounter;
  s.labels = std::move(labels);
  s.value = static_cast<double>(value);
  return s;
}

void AppendDrops(const fabric::DropSnapshot& drops, const MetricLabels& labels,
                 MetricSamples* out) {
  for (int r = 0; r < fabric::kDropReasonCount; ++r) {
    const auto reason = static_cast<fabric::DropReason>(r);
    out->push_back(Counter(
        "amalgam_fabric_dropped_frames_total", "fabric", "received frames thrown away, by reason",
        With(labels, "reason", fabric::DropReasonName(reason)), drops.Get(reason)));
  }
}

}  // namespace

std::shared_ptr<MetricsSource> PageFaultServiceMetrics(const memory::PageFaultService* service,
                                                       MetricLabels labels) {
  return MakeMetricsSource([service, labels](MetricSamples* out) {
    NamedCounters plain;
    for (const auto& [name, value] : service->Metrics()) {
      absl::string_view bucket = name;
      if (absl::ConsumePrefix(&bucket, "fault_service_us_le_")) {
        out->push_back(Counter("amalgam_memory_uffd_fault_service_faults_total", "memory",
                               "faults resolved in (bucket_us/2, bucket_us] microseconds",
                               With(labels, "bucket_us", std::string(bucket)), value));
      } else {
        plain.emplace_back(name, value);
      }
    }
    AppendCounters(
        "memory", "uffd_", plain, labels,
        [](const std::string& name) {
          return absl::StrCat("userfaultfd page-fault service: ", name);
        },
        out);
  });
}

std::shared_ptr<MetricsSource> TransportMetrics(const fabric::Transport* transport,
                                                MetricLabels labels) {
  return MakeMetricsSource([transport, labels](MetricSamples* out) {
    const fabric::TransportStats st = transport->GetStats();
    const std::pair<const char*, std::pair<const char*, uint64_t>> rows[] = {
        {"amalgam_fabric_frames_sent_total", {"frames handed to a link", st.frames_sent}},
        {"amalgam_fabric_frames_received_total",
         {"frames delivered after every check", st.frames_received}},
        {"amalgam_fabric_bytes_sent_total", {"bytes handed to links", st.bytes_sent}},
        {"amalgam_fabric_bytes_received_total", {"bytes of delivered frames", st.bytes_received}},
        {"amalgam_fabric_connects_total",
         {"links established (handshake done), reconnects included", st.connects}},
        {"amalgam_fabric_disconnects_total", {"links lost", st.disconnects}},
    };
    for (const auto& [name, row] : rows) {
      out->push_back(Counter(name, "fabric", row.first, labels, row.second));
    }
    AppendDrops(st.drops, labels, out);
  });
}

std::shared_ptr<MetricsSource> DropCountersMetrics(const fabric::DropCounters* drops,
                                                   MetricLabels labels) {
  return MakeMetricsSource(
      [drops, labels](MetricSamples* out) { AppendDrops(drops->Snapshot(), labels, out); });
}

std::shared_ptr<MetricsSource> DirectoryMetrics(std::function<NamedCounters()> read,
                                                MetricLabels labels) {
  return MakeMetricsSource([read = std::move(read), labels](MetricSamples* out) {
    AppendCounters(
        "directory", "", read(), labels,
        [](const std::string& name) {
          return absl::StrCat("coherence directory / placement: ", name);
        },
        out);
  });
}

void AppendVirtioMetrics(const virtio::MmioTransport& transport, const std::string& id,
                         const std::string& kind, MetricSamples* out) {
  const MetricLabels labels = {{"device", id}, {"kind", kind}};
  for (const virtio::DeviceCounter& c : transport.Counters()) {
    out->push_back(Counter(absl::StrCat("amalgam_virtio_", c.name, "_total"), "virtio", c.help,
                           labels, c.value));
  }
}

}  // namespace amalgam::vmm::api
