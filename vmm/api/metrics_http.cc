#include "vmm/api/metrics_http.h"

#include <exception>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "prometheus/collectable.h"
#include "prometheus/exposer.h"
#include "prometheus/metric_family.h"
#include "prometheus/text_serializer.h"

namespace amalgam::vmm::api {
namespace {

// Groups samples by name into Prometheus families (one HELP/TYPE per name).
std::vector<prometheus::MetricFamily> ToFamilies(const std::vector<v1::Metric>& metrics) {
  std::vector<prometheus::MetricFamily> families;
  std::map<std::string, size_t> index;
  for (const v1::Metric& m : metrics) {
    auto [it, inserted] = index.emplace(m.name(), families.size());
    if (inserted) {
      prometheus::MetricFamily f;
      f.name = m.name();
      f.help = m.help();
      f.type = m.kind() == v1::Metric::KIND_COUNTER ? prometheus::MetricType::Counter
                                                    : prometheus::MetricType::Gauge;
      families.push_back(std::move(f));
    }
    prometheus::MetricFamily& f = families[it->second];
    prometheus::ClientMetric sample;
    // Labels in a stable order (the proto map has none), "library" first.
    sample.label.push_back({"library", m.library()});
    std::map<std::string, std::string> sorted(m.labels().begin(), m.labels().end());
    for (const auto& [k, v] : sorted) sample.label.push_back({k, v});
    if (f.type == prometheus::MetricType::Counter) {
      sample.counter.value = m.value();
    } else {
      sample.gauge.value = m.value();
    }
    f.metric.push_back(std::move(sample));
  }
  return families;
}

class ControllerCollectable final : public prometheus::Collectable {
 public:
  explicit ControllerCollectable(std::shared_ptr<VmController> c) : c_(std::move(c)) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    return ToFamilies(c_->Metrics());
  }

 private:
  const std::shared_ptr<VmController> c_;
};

}  // namespace

std::string ToPrometheusText(const std::vector<v1::Metric>& metrics) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, ToFamilies(metrics));
  return out.str();
}

absl::StatusOr<std::unique_ptr<MetricsHttpEndpoint>> MetricsHttpEndpoint::Start(
    const std::string& address, std::shared_ptr<VmController> controller) {
  if (address.find(':') == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("metrics address \"", address,
                                                   "\" has no port: write it as host:port, e.g. "
                                                   "127.0.0.1:9100"));
  }
  std::unique_ptr<MetricsHttpEndpoint> endpoint(new MetricsHttpEndpoint());
  endpoint->collectable_ = std::make_shared<ControllerCollectable>(std::move(controller));
  try {
    // One worker thread: scrapes are rare and the collection itself is serialized anyway.
    endpoint->exposer_ = std::make_unique<prometheus::Exposer>(address, 1);
  } catch (const std::exception& e) {
    // civetweb reports a failed bind as an exception; it must not cross this boundary.
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on \"", address,
                                               "\": ", e.what(),
                                               "; pick a free host:port for the metrics address"));
  }
  endpoint->exposer_->RegisterCollectable(endpoint->collectable_);
  std::vector<int> ports = endpoint->exposer_->GetListeningPorts();
  endpoint->port_ = ports.empty() ? 0 : ports.front();
  return endpoint;
}

MetricsHttpEndpoint::~MetricsHttpEndpoint() {
  // Stop the HTTP threads before the collectable they call goes away.
  exposer_.reset();
}

}  // namespace amalgam::vmm::api
