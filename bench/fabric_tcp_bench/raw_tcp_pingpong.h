// The baseline: a 4 KiB page fetch over a plain blocking TCP socket (TCP_NODELAY), with no amalgam
// code at all. Request = 16 bytes {page, id}; reply = the same 16 bytes + the page.
#ifndef AMALGAM_BENCH_FABRIC_TCP_BENCH_RAW_TCP_PINGPONG_H_
#define AMALGAM_BENCH_FABRIC_TCP_BENCH_RAW_TCP_PINGPONG_H_

#include <cstdint>
#include <vector>

namespace amalgam::bench {

// Serves page fetches from `store` (pages of 4 KiB) on one accepted connection until the
// client sends page ~0. Writes the listening port to `port_fd` first. Returns 0 on success.
int RawTcpServe(const std::vector<uint8_t>& store, int port_fd);

// Client side; `port` is the server's. Fills per-round-trip microseconds and the windowed
// throughput. Returns false (with `error`) on a socket failure.
struct RawTcpResult {
  std::vector<double> rtt_us;
  uint64_t bw_pages = 0;
  double bw_secs = 0;
  uint64_t bad = 0;
};
bool RawTcpFetch(int port, const std::vector<uint8_t>& store, int rtt_n, double seconds, int window,
                 RawTcpResult* out, const char** error);

}  // namespace amalgam::bench

#endif  // AMALGAM_BENCH_FABRIC_TCP_BENCH_RAW_TCP_PINGPONG_H_
