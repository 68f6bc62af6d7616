#include "bench/node/home_node.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "bench/fabric_tcp_bench/raw_tcp_pingpong.h"
#include "bench/node/timed_transport.h"
#include "fabric/schema/messages.capnp.h"

namespace amalgam::bench {

namespace {

using fabric::schema::Message;

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "bench: %s\n", what);
  std::exit(1);
}

bool WriteAll(int fd, const void* p, size_t n) { return ::write(fd, p, n) == ssize_t(n); }

// The child's body; its exit status.
int Serve(const fabric::FrameKey& key, const directory::StaticPartitionHomeMap& homes,
          directory::NodeId self, int port_fd, int result_fd) {
  fabric::TcpTransportOptions o;
  o.self = self;
  o.cluster_key = key;
  for (directory::NodeId n = 0; n < self; ++n) o.peers[n] = "127.0.0.1:1";  // lower ids dial
  auto tcp = fabric::TcpTransport::Create(o);
  if (!tcp.ok()) return 1;
  int port = (*tcp)->listen_port();
  if (!WriteAll(port_fd, &port, sizeof(port))) return 1;
  TimedTransport timed(tcp->get());
  absl::Notification leave;
  vmm::node::NodeRuntimeOptions ro;
  ro.self = self;
  ro.homes = &homes;
  ro.transport = &timed;
  ro.on_other_message = [&](fabric::ReceivedMessage m) {
    if (m.type() == Message::LEAVE && !leave.HasBeenNotified()) leave.Notify();
  };
  auto rt = vmm::node::NodeRuntime::Create(ro);
  if (!rt.ok() || !(*rt)->Start().ok()) return 1;
  leave.WaitForNotificationWithTimeout(absl::Minutes(10));
  (*rt)->Stop();
  (*tcp)->Close();
  std::vector<double> us;
  int64_t received = -1;
  for (const TimedTransport::Event& e : timed.TakeEvents()) {
    if (!e.sent && e.type == Message::PAGE_REQUEST) received = e.ns;
    if (e.sent && e.type == Message::PAGE_GRANT && received >= 0) {
      us.push_back((e.ns - received) / 1e3);
      received = -1;
    }
  }
  uint64_t n = us.size();
  if (!WriteAll(result_fd, &n, sizeof(n))) return 1;
  return n == 0 || WriteAll(result_fd, us.data(), n * sizeof(double)) ? 0 : 1;
}

}  // namespace

HomeNode::HomeNode(const fabric::FrameKey& key, const directory::StaticPartitionHomeMap& homes,
                   directory::NodeId self)
    : key_(key), self_(self) {
  int port_pipe[2], result_pipe[2];
  if (pipe(port_pipe) != 0 || pipe(result_pipe) != 0) Die("pipe");
  std::fflush(stdout);
  std::fflush(stderr);
  pid_ = fork();
  if (pid_ < 0) Die("fork");
  if (pid_ == 0) {
    ::close(port_pipe[0]);
    ::close(result_pipe[0]);
    _exit(Serve(key, homes, self, port_pipe[1], result_pipe[1]));
  }
  ::close(port_pipe[1]);
  ::close(result_pipe[1]);
  result_fd_ = result_pipe[0];
  if (::read(port_pipe[0], &port_, sizeof(port_)) != sizeof(port_)) Die("home node did not start");
  ::close(port_pipe[0]);
}

std::unique_ptr<fabric::TcpTransport> HomeNode::DialAsNode0() const {
  fabric::TcpTransportOptions o;
  o.self = 0;
  o.cluster_key = key_;
  o.peers = {{self_, absl::StrCat("127.0.0.1:", port_)}};
  auto tcp = fabric::TcpTransport::Create(o);
  if (!tcp.ok() || !(*tcp)->WaitForPeer(self_, absl::Seconds(20)).ok()) Die("no link to the home");
  return std::move(*tcp);
}

void HomeNode::Leave(vmm::node::NodeRuntime& node0) const {
  capnp::MallocMessageBuilder leave;
  leave.initRoot<Message>().initLeave().setNodeId(0);
  (void)node0.SendOther(self_, leave);
}

std::vector<double> HomeNode::Finish() {
  std::vector<double> us;
  uint64_t n = 0;
  if (::read(result_fd_, &n, sizeof(n)) == sizeof(n)) {
    for (uint64_t i = 0; i < n; ++i) {
      double v;
      if (::read(result_fd_, &v, sizeof(v)) != sizeof(v)) break;
      us.push_back(v);
    }
  }
  ::close(result_fd_);
  ::waitpid(pid_, nullptr, 0);
  return us;
}

void RawTcpFloor(uint64_t n, std::vector<double>* out) {
  std::vector<uint8_t> store(64 * 4096, 0x5A);
  int p[2];
  if (pipe(p) != 0) Die("pipe");
  std::fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) Die("fork");
  if (pid == 0) {
    ::close(p[0]);
    _exit(RawTcpServe(store, p[1]));
  }
  ::close(p[1]);
  int port = -1;
  if (::read(p[0], &port, sizeof(port)) != sizeof(port)) port = -1;
  ::close(p[0]);
  RawTcpResult r;
  const char* error = "server did not start";
  if (port <= 0 || !RawTcpFetch(port, store, static_cast<int>(n), 0, 1, &r, &error)) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    std::fprintf(stderr, "bench: raw TCP floor: %s\n", error);
    std::exit(1);
  }
  ::waitpid(pid, nullptr, 0);
  out->insert(out->end(), r.rtt_us.begin(), r.rtt_us.end());
}

}  // namespace amalgam::bench
