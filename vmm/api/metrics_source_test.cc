// MetricsRegistry, ScopedMetricsSource and the conversion to the API's Metric (pure logic).
#include "vmm/api/metrics_source.h"

#include <catch2/catch.hpp>

#include "vmm/api/controller.h"

namespace amalgam::vmm::api {
namespace {

std::shared_ptr<MetricsSource> Constant(std::string name, double value) {
  return MakeMetricsSource([name, value](MetricSamples* out) {
    MetricSample s;
    s.name = name;
    s.library = "test";
    s.value = value;
    out->push_back(s);
  });
}

TEST_CASE("registry: sources are asked in registration order until removed") {
  MetricsRegistry registry;
  CHECK(registry.Collect().empty());
  const MetricsRegistry::Id a = registry.Add(Constant("amalgam_test_a_total", 1));
  const MetricsRegistry::Id b = registry.Add(Constant("amalgam_test_b_total", 2));
  MetricSamples got = registry.Collect();
  REQUIRE(got.size() == 2);
  CHECK(got[0].name == "amalgam_test_a_total");
  CHECK(got[1].value == 2);
  registry.Remove(a);
  registry.Remove(a);  // twice: ignored
  registry.Remove(12345);
  got = registry.Collect();
  REQUIRE(got.size() == 1);
  CHECK(got[0].name == "amalgam_test_b_total");
  registry.Remove(b);
  CHECK(registry.size() == 0);
}

TEST_CASE("ScopedMetricsSource unregisters with its owner, also after a move") {
  MetricsRegistry registry;
  {
    ScopedMetricsSource outer;
    {
      ScopedMetricsSource inner(&registry, Constant("amalgam_test_x_total", 1));
      CHECK(registry.size() == 1);
      outer = std::move(inner);
    }
    CHECK(registry.size() == 1);  // moved, not removed
  }
  CHECK(registry.size() == 0);
}

TEST_CASE("AppendCounters names counters amalgam_<library>_<prefix><name>_total") {
  MetricSamples out;
  AppendCounters(
      "directory", "placement_", {{"migrations", 3}}, {{"node", "1"}},
      [](const std::string& n) { return "help for " + n; }, &out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].name == "amalgam_directory_placement_migrations_total");
  CHECK(out[0].library == "directory");
  CHECK(out[0].help == "help for migrations");
  CHECK(out[0].kind == MetricKind::kCounter);
  CHECK(out[0].labels == MetricLabels{{"node", "1"}});
  CHECK(out[0].value == 3);
}

TEST_CASE("ToMetric: Prometheus-safe names and labels; 'library' cannot be overridden") {
  MetricSample s;
  s.name = "amalgam_node_page-faults.total";
  s.library = "node";
  s.help = "h";
  s.kind = MetricKind::kGauge;
  s.labels = {{"peer node", "2"}, {"library", "evil"}, {"9x", "y"}};
  s.value = 7;
  const v1::Metric m = ToMetric(s);
  CHECK(m.name() == "amalgam_node_page_faults_total");
  CHECK(m.library() == "node");
  CHECK(m.kind() == v1::Metric::KIND_GAUGE);
  CHECK(m.value() == 7);
  CHECK(m.labels().at("peer_node") == "2");
  CHECK(m.labels().at("_9x") == "y");
  CHECK(m.labels().count("library") == 0);
  CHECK(SanitizeMetricName("") == "_");
  CHECK(SanitizeMetricName("a:b") == "a:b");
  CHECK(SanitizeLabelName("a:b") == "a_b");
}

}  // namespace
}  // namespace amalgam::vmm::api
