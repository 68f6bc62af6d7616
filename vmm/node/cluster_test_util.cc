#include "vmm/node/cluster_test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "vmm/run_process_testutil.h"

namespace amalgam::vmm::node {

int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

std::map<std::string, uint64_t> ReadMetricsFile(const std::string& path) {
  std::map<std::string, uint64_t> m;
  std::ifstream in(path);
  std::string name;
  uint64_t value;
  while (in >> name >> value) m[name] = value;
  return m;
}

std::string LoopbackPeers(const std::vector<int>& ports) {
  std::string peers;
  for (size_t i = 0; i < ports.size(); ++i) {
    peers += (i ? "," : "") + std::to_string(i) + "=127.0.0.1:" + std::to_string(ports[i]);
  }
  return peers;
}

std::string MetricsPath(const TestClusterSpec& spec, int id) {
  return spec.metrics_stem + std::to_string(id) + ".txt";
}

std::vector<std::string> NodeArgs(const TestClusterSpec& spec, int id) {
  std::vector<std::string> a = {AmalgamBinary(),
                                "--node-id",
                                std::to_string(id),
                                "--peers",
                                LoopbackPeers(spec.ports),
                                "--cluster-key",
                                spec.key_path,
                                "--memory",
                                spec.memory,
                                "--metrics-out",
                                MetricsPath(spec, id),
                                "--peer-timeout",
                                std::to_string(spec.peer_timeout_s)};
  if (!spec.node_memory.empty()) a.insert(a.end(), {"--node-memory", spec.node_memory});
  if (!spec.fabric.empty()) a.insert(a.end(), {"--fabric", spec.fabric});
  return a;
}

}  // namespace amalgam::vmm::node
