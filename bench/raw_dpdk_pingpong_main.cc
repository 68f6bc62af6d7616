// raw_dpdk_pingpong: the raw DPDK memif page-fetch baseline on its own.
//   bazel run //bench:raw_dpdk_pingpong -- [--iters N] [--secs S] [--window W]
// Forks a server process (lcore 0) and a client process (lcore 1) joined by a memif socket in a
// private temp dir, then prints the client's RTT and pages/s.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "bench/raw_dpdk_pingpong.h"
#include "testutil/child_process.h"

int main(int argc, char** argv) {
  using amalgam::bench::PingpongStats;
  amalgam::bench::RawPingpongConfig cfg;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--iters")
      cfg.rtt_iters = std::atoi(argv[i + 1]);
    else if (k == "--secs")
      cfg.bw_secs = std::atof(argv[i + 1]);
    else if (k == "--window")
      cfg.window = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown flag %s (known: --iters --secs --window)\n", k.c_str());
      return 2;
    }
  }
  char dir[] = "/tmp/raw_pingpong.XXXXXX";
  if (mkdtemp(dir) == nullptr) return 1;
  std::string tag = std::to_string(getpid());
  cfg.socket_path = std::string(dir) + "/memif.sock";
  auto scfg = cfg, ccfg = cfg;
  scfg.server = true;
  scfg.lcore = 0;
  scfg.file_prefix = "rawps" + tag;
  ccfg.lcore = 1;
  ccfg.file_prefix = "rawpc" + tag;
  auto srv = amalgam::testutil::ForkChild<PingpongStats>([&] { return RunRawServer(scfg); });
  usleep(200000);
  auto cli = amalgam::testutil::ForkChild<PingpongStats>([&] { return RunRawClient(ccfg); });
  PingpongStats cs, ss;
  bool cok = amalgam::testutil::WaitChild(cli, &cs, std::chrono::seconds(120));
  bool sok = amalgam::testutil::WaitChild(srv, &ss, std::chrono::seconds(10));
  unlink(cfg.socket_path.c_str());
  rmdir(dir);
  amalgam::bench::PrintStats("raw DPDK memif", cs);
  if (!sok || !ss.ok) std::printf("server: %s\n", sok ? ss.error : "no result");
  return cok && cs.ok ? 0 : 1;
}
