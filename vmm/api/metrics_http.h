// MetricsHttpEndpoint: the controller's metrics in Prometheus text format over HTTP, served by
// prometheus-cpp's Exposer (civetweb) and collected afresh on every scrape.
// Thread-safe; shares the controller.
#ifndef AMALGAM_VMM_API_METRICS_HTTP_H_
#define AMALGAM_VMM_API_METRICS_HTTP_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "vmm/api/amalgam.pb.h"
#include "vmm/api/controller.h"

namespace prometheus {
class Exposer;
class Collectable;
}  // namespace prometheus

namespace amalgam::vmm::api {

class MetricsHttpEndpoint {
 public:
  // `address` is "host:port" ("127.0.0.1:0" picks a port). Serves GET /metrics.
  static absl::StatusOr<std::unique_ptr<MetricsHttpEndpoint>> Start(
      const std::string& address, std::shared_ptr<VmController> controller);
  ~MetricsHttpEndpoint();

  int port() const { return port_; }

 private:
  MetricsHttpEndpoint() = default;
  std::shared_ptr<prometheus::Collectable> collectable_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
};

// Renders metrics in the Prometheus text exposition format (exported for tests and amalgamctl).
std::string ToPrometheusText(const std::vector<v1::Metric>& metrics);

}  // namespace amalgam::vmm::api

#endif  // AMALGAM_VMM_API_METRICS_HTTP_H_
