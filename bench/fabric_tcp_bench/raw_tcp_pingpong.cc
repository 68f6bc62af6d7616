#include "bench/fabric_tcp_bench/raw_tcp_pingpong.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <deque>

namespace amalgam::bench {
namespace {

constexpr size_t kPage = 4096;
constexpr uint64_t kStop = ~uint64_t{0};

bool ReadAll(int fd, void* buf, size_t n) {
  auto* p = static_cast<uint8_t*>(buf);
  while (n > 0) {
    ssize_t r = ::read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= r;
  }
  return true;
}

bool WriteAll(int fd, const void* buf, size_t n) {
  auto* p = static_cast<const uint8_t*>(buf);
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    p += w;
    n -= w;
  }
  return true;
}

void NoDelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

double NowUs() {
  return std::chrono::duration<double, std::micro>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int RawTcpServe(const std::vector<uint8_t>& store, int port_fd) {
  int l = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(sa);
  if (::bind(l, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 || ::listen(l, 1) != 0 ||
      ::getsockname(l, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    return 1;
  }
  int port = ntohs(sa.sin_port);
  if (::write(port_fd, &port, sizeof(port)) != sizeof(port)) return 1;
  int c = ::accept(l, nullptr, nullptr);
  ::close(l);
  if (c < 0) return 1;
  NoDelay(c);
  size_t pages = store.size() / kPage;
  uint8_t reply[16 + kPage];
  for (;;) {
    uint64_t req[2];
    if (!ReadAll(c, req, sizeof(req))) return 1;
    if (req[0] == kStop) break;
    std::memcpy(reply, req, sizeof(req));
    std::memcpy(reply + 16, store.data() + (req[0] % pages) * kPage, kPage);
    if (!WriteAll(c, reply, sizeof(reply))) return 1;
  }
  ::close(c);
  return 0;
}

bool RawTcpFetch(int port, const std::vector<uint8_t>& store, int rtt_n, double seconds, int window,
                 RawTcpResult* out, const char** error) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    *error = "connect failed";
    return false;
  }
  NoDelay(fd);
  size_t pages = store.size() / kPage;
  uint8_t reply[16 + kPage];
  auto check = [&](const uint8_t* r) {
    uint64_t page;
    std::memcpy(&page, r, sizeof(page));
    if (std::memcmp(r + 16, store.data() + (page % pages) * kPage, kPage) != 0) ++out->bad;
  };
  for (int i = 0; i < rtt_n; ++i) {
    uint64_t req[2] = {static_cast<uint64_t>(i), static_cast<uint64_t>(i)};
    double t0 = NowUs();
    if (!WriteAll(fd, req, sizeof(req)) || !ReadAll(fd, reply, sizeof(reply))) {
      *error = "rtt phase: connection lost";
      return false;
    }
    out->rtt_us.push_back(NowUs() - t0);
    check(reply);
  }
  // Throughput: keep `window` fetches in flight for `seconds`.
  double start = NowUs(), end = start + seconds * 1e6;
  uint64_t next = 0, inflight = 0;
  while (true) {
    bool more = NowUs() < end;
    while (more && inflight < static_cast<uint64_t>(window)) {
      uint64_t req[2] = {next, next};
      if (!WriteAll(fd, req, sizeof(req))) {
        *error = "bw phase: connection lost";
        return false;
      }
      ++next;
      ++inflight;
    }
    if (inflight == 0) break;
    if (!ReadAll(fd, reply, sizeof(reply))) {
      *error = "bw phase: connection lost";
      return false;
    }
    check(reply);
    --inflight;
    ++out->bw_pages;
  }
  out->bw_secs = (NowUs() - start) / 1e6;
  uint64_t stop[2] = {kStop, 0};
  WriteAll(fd, stop, sizeof(stop));
  ::close(fd);
  return true;
}

}  // namespace amalgam::bench
