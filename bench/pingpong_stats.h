// Latency/throughput summary shared by the DPDK page-fetch benchmarks. Plain data, no threads.
#ifndef AMALGAM_BENCH_PINGPONG_STATS_H_
#define AMALGAM_BENCH_PINGPONG_STATS_H_

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

namespace amalgam::bench {

// Trivially copyable on purpose: a benchmark child process writes it into a pipe.
struct PingpongStats {
  int ok = 0;          // 1 when the client finished its run
  uint64_t rtt_n = 0;  // measured round trips (one page fetch each, one in flight)
  uint64_t bad = 0;    // pages whose content did not match the expected pattern
  uint64_t lost = 0;   // requests without a reply within the client's timeout
  double min_us = 0, p50_us = 0, p99_us = 0, max_us = 0;
  uint64_t bw_pages = 0;  // pages fetched in the windowed (throughput) phase
  double bw_secs = 0;
  double pages_per_s = 0;
  char error[160] = {0};  // why ok == 0
};

// Fills the latency fields from per-round-trip samples (microseconds); sorts `us`.
inline void SummarizeRtt(std::vector<double>& us, PingpongStats* s) {
  s->rtt_n = us.size();
  if (us.empty()) return;
  std::sort(us.begin(), us.end());
  auto at = [&](double q) {
    return us[std::min(us.size() - 1, static_cast<size_t>(q * us.size()))];
  };
  s->min_us = us.front();
  s->p50_us = at(0.50);
  s->p99_us = at(0.99);
  s->max_us = us.back();
}

inline void PrintStats(const char* name, const PingpongStats& s) {
  if (!s.ok) {
    std::printf("%-28s FAILED: %s\n", name, s.error);
    return;
  }
  std::printf(
      "%-28s rtt n=%llu p50=%.2fus p99=%.2fus min=%.2fus max=%.1fus | bw pages=%llu "
      "pages/s=%.0f | bad=%llu lost=%llu\n",
      name, static_cast<unsigned long long>(s.rtt_n), s.p50_us, s.p99_us, s.min_us, s.max_us,
      static_cast<unsigned long long>(s.bw_pages), s.pages_per_s,
      static_cast<unsigned long long>(s.bad), static_cast<unsigned long long>(s.lost));
}

// Page content both sides agree on: word i of page p. Cheap to generate and to check.
inline uint64_t PagePatternWord(uint64_t page, uint64_t i) {
  return (page + 1) * 0x9E3779B97F4A7C15ull ^ (i * 0xBF58476D1CE4E5B9ull);
}

}  // namespace amalgam::bench

#endif  // AMALGAM_BENCH_PINGPONG_STATS_H_
