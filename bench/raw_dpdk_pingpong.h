// The baseline for the fabric benchmark: a 4 KiB "page fetch" ping-pong over a DPDK port with no
// amalgam code at all (no framing library, no authentication, no reliability). The client sends a
// small request, the server answers with the page in one (chained) frame. Each side must run in its
// own process because DPDK's EAL initialises once per process. Not thread-safe.
#ifndef AMALGAM_BENCH_RAW_DPDK_PINGPONG_H_
#define AMALGAM_BENCH_RAW_DPDK_PINGPONG_H_

#include <string>

#include "bench/pingpong_stats.h"

namespace amalgam::bench {

struct RawPingpongConfig {
  bool server = false;
  std::string socket_path;  // memif control socket shared by both sides
  std::string memif_extra;  // appended to the memif devargs, e.g. ",bsize=16384"
  std::string file_prefix;  // EAL --file-prefix, unique per process
  int lcore = 0;            // EAL -l
  int rtt_iters = 20000;    // measured round trips (after warmup)
  int warmup = 1000;
  double bw_secs = 2.0;               // windowed throughput phase
  int window = 32;                    // requests in flight in the throughput phase
  double server_idle_exit_secs = 30;  // server gives up without traffic (client died)
};

// Runs the server until the client sends STOP (or the idle limit). Returns ok=1 on a clean stop.
PingpongStats RunRawServer(const RawPingpongConfig& cfg);
// Runs the client's RTT and throughput phases, then stops the server.
PingpongStats RunRawClient(const RawPingpongConfig& cfg);

}  // namespace amalgam::bench

#endif  // AMALGAM_BENCH_RAW_DPDK_PINGPONG_H_
