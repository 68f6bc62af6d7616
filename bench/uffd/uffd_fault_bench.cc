// Host-measured local fault service time (touch -> resume, measured by the touching thread) for
// MISSING and WP faults on memfd guest RAM: PageFaultService (with a handler that installs /
// unprotects at once) beside the floor, a bare poll/read/ioctl loop on a raw uffd, in the same
// run, alternating rounds. Prints median / p99 and the service/floor ratio. Never asserts.
//   bazel run -c opt //bench/uffd:uffd_fault_bench -- [pages_per_round] [rounds]
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "bench/uffd/raw_uffd_loop.h"
#include "memory/page_fault_service.h"
#include "memory/userfaultfd.h"

namespace amalgam::memory {
namespace {

double NowUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

struct Samples {
  std::vector<double> missing, wp;
};

alignas(4096) uint8_t g_content[kPageSize];

// The toucher: reads every page (MISSING faults), then writes every page (WP faults).
void Touch(GuestMemory& mem, uint64_t pages, Samples* out) {
  volatile uint64_t* base = reinterpret_cast<volatile uint64_t*>(mem.regions()[0].host_address());
  for (uint64_t i = 0; i < pages; ++i) {
    double t0 = NowUs();
    (void)base[i * kPageSize / 8];
    out->missing.push_back(NowUs() - t0);
  }
  for (uint64_t i = 0; i < pages; ++i) {
    double t0 = NowUs();
    base[i * kPageSize / 8] = i;
    out->wp.push_back(NowUs() - t0);
  }
}

std::unique_ptr<GuestMemory> NewMemory(uint64_t pages) {
  auto mem = GuestMemory::Create({{GuestAddress(0), pages * kPageSize}});
  if (!mem.ok()) {
    fprintf(stderr, "GuestMemory: %s\n", mem.status().ToString().c_str());
    exit(1);
  }
  return std::move(*mem);
}

// Floor: the bare loop.
void FloorRound(uint64_t pages, Samples* out) {
  auto mem = NewMemory(pages);
  bench::RawUffdLoop loop(mem->regions()[0].host_address(), pages * kPageSize, g_content);
  Touch(*mem, pages, out);
}

class ImmediateHandler : public PageFaultHandler {
 public:
  PageFaultService* svc = nullptr;
  void OnFault(const PageFault& f) override {
    absl::Status s = f.kind == FaultKind::kMissing
                         ? svc->InstallShared(f.gpa, absl::MakeConstSpan(g_content, kPageSize))
                         : svc->MakeWritable(f.gpa);
    if (!s.ok()) {
      fprintf(stderr, "resolve: %s\n", s.ToString().c_str());
      exit(1);
    }
  }
};

void ServiceRound(uint64_t pages, Samples* out, std::map<std::string, uint64_t>* metrics) {
  auto mem = NewMemory(pages);
  ImmediateHandler h;
  auto svc = PageFaultService::Create(mem.get(), &h);
  if (!svc.ok()) {
    fprintf(stderr, "PageFaultService: %s\n", svc.status().ToString().c_str());
    exit(1);
  }
  h.svc = svc->get();
  if (!(*svc)->RegisterAll().ok() || !(*svc)->Start().ok()) exit(1);
  Touch(*mem, pages, out);
  (*svc)->Shutdown();
  for (auto& [k, v] : (*svc)->Metrics()) (*metrics)[k] += v;
}

struct Summary {
  double p50, p99;
};
Summary Summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))]; };
  return {at(0.5), at(0.99)};
}

void Print(const char* kind, const std::vector<double>& floor, const std::vector<double>& svc) {
  Summary f = Summarize(floor), s = Summarize(svc);
  printf(
      "%-8s floor: n=%zu median %.2f us p99 %.2f us | service: n=%zu median %.2f us p99 %.2f us"
      " | ratio median %.2fx p99 %.2fx\n",
      kind, floor.size(), f.p50, f.p99, svc.size(), s.p50, s.p99, s.p50 / f.p50, s.p99 / f.p99);
}

}  // namespace
}  // namespace amalgam::memory

int main(int argc, char** argv) {
  using namespace amalgam::memory;
  const uint64_t pages = argc > 1 ? strtoull(argv[1], nullptr, 0) : 2000;
  const int rounds = argc > 2 ? atoi(argv[2]) : 3;
  for (size_t i = 0; i < kPageSize; ++i) g_content[i] = static_cast<uint8_t>(i);
  Samples floor, svc;
  std::map<std::string, uint64_t> metrics;
  for (int r = 0; r < rounds; ++r) {  // alternate so load changes hit both alike
    FloorRound(pages, &floor);
    ServiceRound(pages, &svc, &metrics);
  }
  printf("uffd fault service, host thread touch -> resume, memfd, %llu pages x %d rounds\n",
         static_cast<unsigned long long>(pages), rounds);
  Print("MISSING", floor.missing, svc.missing);
  Print("WP", floor.wp, svc.wp);
  printf(
      "service metrics: missing_read=%llu wp=%llu copies=%llu wp_off=%llu eexist=%llu "
      "mean read->resolve %.2f us\n",
      static_cast<unsigned long long>(metrics["faults_missing_read"]),
      static_cast<unsigned long long>(metrics["faults_wp"]),
      static_cast<unsigned long long>(metrics["copies"]),
      static_cast<unsigned long long>(metrics["wp_off"]),
      static_cast<unsigned long long>(metrics["eexist"]),
      metrics["fault_service_count"]
          ? double(metrics["fault_service_sum_us"]) / metrics["fault_service_count"]
          : 0.0);
  return 0;
}
