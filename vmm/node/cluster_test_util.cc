#include "vmm/node/cluster_test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

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

}  // namespace amalgam::vmm::node
