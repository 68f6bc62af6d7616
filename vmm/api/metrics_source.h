// MetricsSource / MetricsRegistry: how any part of amalgam (the VMM, the node runtime, a
// library's owner) contributes counters to the control API's metrics (gRPC Metrics.GetMetrics,
// `amalgamctl metrics`, the Prometheus endpoint) without the API knowing it. A source appends
// samples when asked; the registry asks every registered source on each scrape.
// Thread-safety: MetricsRegistry is thread-safe; sources are called from API threads, possibly
// concurrently with each other and with the VM running. Ownership: the registry shares sources.
#ifndef AMALGAM_VMM_API_METRICS_SOURCE_H_
#define AMALGAM_VMM_API_METRICS_SOURCE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace amalgam::vmm::api {

enum class MetricKind { kCounter, kGauge };

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// One value. `name` is the full Prometheus name, `amalgam_<library>_<what>` (counters end in
// `_total`); characters Prometheus does not allow are replaced by '_' on the way out. The label
// "library" is set from `library`; do not add it yourself.
struct MetricSample {
  std::string name;
  std::string library;  // "vcpu", "memory", "virtio", "fabric", "directory", "node", ...
  std::string help;     // one line; the same for every sample of one name
  MetricKind kind = MetricKind::kCounter;
  MetricLabels labels;
  double value = 0;
};
using MetricSamples = std::vector<MetricSample>;

class MetricsSource {
 public:
  virtual ~MetricsSource() = default;
  // Appends the current values. Must be thread-safe and quick (it runs on every scrape) and
  // must not wait for the guest or the network.
  virtual void Collect(MetricSamples* out) const = 0;
};

// A source from a function (captures must stay valid while it is registered).
std::shared_ptr<MetricsSource> MakeMetricsSource(std::function<void(MetricSamples*)> collect);

// (name, value) counters as most libraries report them (PageFaultService::Metrics,
// PlacementPolicy::Stats, VirtioDevice::Counters), turned into samples named
// `amalgam_<library>_<prefix><name>_total` with `labels` and `help_for(name)` as help.
void AppendCounters(const std::string& library, const std::string& prefix,
                    const std::vector<std::pair<std::string, uint64_t>>& counters,
                    const MetricLabels& labels,
                    const std::function<std::string(const std::string&)>& help_for,
                    MetricSamples* out);

class MetricsRegistry {
 public:
  using Id = uint64_t;
  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Registers a source; it is asked on every Collect until Remove(id).
  Id Add(std::shared_ptr<const MetricsSource> source);
  // Unregisters; returns only once no Collect is calling the source any more, so whatever it
  // points at may be destroyed right after. Unknown ids are ignored.
  void Remove(Id id);
  // Every registered source's samples, in registration order.
  MetricSamples Collect() const;
  size_t size() const;

 private:
  mutable absl::Mutex mu_;
  Id next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<Id, std::shared_ptr<const MetricsSource>> sources_ ABSL_GUARDED_BY(mu_);
};

// Registers on construction, unregisters on destruction: tie a source's life to its owner's.
// Not copyable; movable. Thread-compatible.
class ScopedMetricsSource {
 public:
  ScopedMetricsSource() = default;
  ScopedMetricsSource(MetricsRegistry* registry, std::shared_ptr<const MetricsSource> source);
  ~ScopedMetricsSource();
  ScopedMetricsSource(ScopedMetricsSource&& other) noexcept;
  ScopedMetricsSource& operator=(ScopedMetricsSource&& other) noexcept;
  ScopedMetricsSource(const ScopedMetricsSource&) = delete;
  ScopedMetricsSource& operator=(const ScopedMetricsSource&) = delete;

 private:
  MetricsRegistry* registry_ = nullptr;
  MetricsRegistry::Id id_ = 0;
};

// Prometheus-safe spellings: metric names [a-zA-Z_:][a-zA-Z0-9_:]*, label names
// [a-zA-Z_][a-zA-Z0-9_]*; anything else becomes '_' (a leading digit gets a '_' before it).
std::string SanitizeMetricName(const std::string& name);
std::string SanitizeLabelName(const std::string& name);

}  // namespace amalgam::vmm::api

#endif  // AMALGAM_VMM_API_METRICS_SOURCE_H_
