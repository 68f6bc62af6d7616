#include "vmm/api/metrics_source.h"

#include <cctype>

#include "absl/strings/str_cat.h"

namespace amalgam::vmm::api {
namespace {

class FunctionSource final : public MetricsSource {
 public:
  explicit FunctionSource(std::function<void(MetricSamples*)> f) : f_(std::move(f)) {}
  void Collect(MetricSamples* out) const override {
    if (f_) f_(out);
  }

 private:
  const std::function<void(MetricSamples*)> f_;
};

std::string Sanitize(const std::string& name, bool allow_colon) {
  std::string out;
  out.reserve(name.size() + 1);
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) out.push_back('_');
  for (char c : name) {
    const bool ok =
        std::isalnum(static_cast<unsigned char>(c)) || c == '_' || (allow_colon && c == ':');
    out.push_back(ok && static_cast<unsigned char>(c) < 0x80 ? c : '_');
  }
  return out;
}

}  // namespace

std::shared_ptr<MetricsSource> MakeMetricsSource(std::function<void(MetricSamples*)> collect) {
  return std::make_shared<FunctionSource>(std::move(collect));
}

void AppendCounters(const std::string& library, const std::string& prefix,
                    const std::vector<std::pair<std::string, uint64_t>>& counters,
                    const MetricLabels& labels,
                    const std::function<std::string(const std::string&)>& help_for,
                    MetricSamples* out) {
  for (const auto& [name, value] : counters) {
    MetricSample s;
    s.name = absl::StrCat("amalgam_", library, "_", prefix, name, "_total");
    s.library = library;
    s.help = help_for ? help_for(name) : name;
    s.kind = MetricKind::kCounter;
    s.labels = labels;
    s.value = static_cast<double>(value);
    out->push_back(std::move(s));
  }
}

MetricsRegistry::Id MetricsRegistry::Add(std::shared_ptr<const MetricsSource> source) {
  absl::MutexLock lock(&mu_);
  const Id id = next_id_++;
  sources_.emplace(id, std::move(source));
  return id;
}

void MetricsRegistry::Remove(Id id) {
  // The writer lock waits for every Collect (reader) in progress.
  absl::MutexLock lock(&mu_);
  sources_.erase(id);
}

MetricSamples MetricsRegistry::Collect() const {
  MetricSamples out;
  absl::ReaderMutexLock lock(&mu_);
  for (const auto& [id, source] : sources_) {
    if (source != nullptr) source->Collect(&out);
  }
  return out;
}

size_t MetricsRegistry::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return sources_.size();
}

ScopedMetricsSource::ScopedMetricsSource(MetricsRegistry* registry,
                                         std::shared_ptr<const MetricsSource> source)
    : registry_(registry), id_(registry->Add(std::move(source))) {}

ScopedMetricsSource::~ScopedMetricsSource() {
  if (registry_ != nullptr) registry_->Remove(id_);
}

ScopedMetricsSource::ScopedMetricsSource(ScopedMetricsSource&& other) noexcept
    : registry_(other.registry_), id_(other.id_) {
  other.registry_ = nullptr;
}

ScopedMetricsSource& ScopedMetricsSource::operator=(ScopedMetricsSource&& other) noexcept {
  if (this != &other) {
    if (registry_ != nullptr) registry_->Remove(id_);
    registry_ = other.registry_;
    id_ = other.id_;
    other.registry_ = nullptr;
  }
  return *this;
}

std::string SanitizeMetricName(const std::string& name) { return Sanitize(name, true); }
std::string SanitizeLabelName(const std::string& name) { return Sanitize(name, false); }

}  // namespace amalgam::vmm::api
