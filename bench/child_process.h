// Runs a function in a forked child and collects a trivially copyable result through a pipe.
// DPDK's EAL can be initialised once per process, so each benchmark side gets its own process;
// the parent never touches DPDK. Not thread-safe: call from a single-threaded parent.
#ifndef AMALGAM_BENCH_CHILD_PROCESS_H_
#define AMALGAM_BENCH_CHILD_PROCESS_H_

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <type_traits>

namespace amalgam::bench {

struct Child {
  pid_t pid = -1;
  int fd = -1;  // read end of the result pipe
};

// Forks; the child runs fn() -> Result, writes it to the pipe and _exit()s (no atexit handlers:
// the parent's Catch2/absl state must not run twice).
template <typename Result, typename Fn>
Child ForkChild(Fn fn) {
  static_assert(std::is_trivially_copyable<Result>::value, "Result crosses a pipe");
  int p[2];
  if (pipe(p) != 0) return {};
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    close(p[0]);
    close(p[1]);
    return {};
  }
  if (pid == 0) {
    close(p[0]);
    Result r = fn();
    const char* b = reinterpret_cast<const char*>(&r);
    size_t off = 0;
    while (off < sizeof(r)) {
      ssize_t w = write(p[1], b + off, sizeof(r) - off);
      if (w <= 0) break;
      off += static_cast<size_t>(w);
    }
    std::fflush(stdout);
    std::fflush(stderr);
    _exit(0);
  }
  close(p[1]);
  return {pid, p[0]};
}

// Waits up to `timeout` for the child's result; kills the child (SIGKILL) if it overruns.
// Returns false if no complete result arrived.
template <typename Result>
bool WaitChild(Child& c, Result* out, std::chrono::milliseconds timeout) {
  if (c.pid < 0) return false;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  bool exited = false;
  while (std::chrono::steady_clock::now() < deadline) {
    pid_t r = waitpid(c.pid, &status, WNOHANG);
    if (r == c.pid) {
      exited = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!exited) {
    kill(c.pid, SIGKILL);
    waitpid(c.pid, &status, 0);
  }
  size_t off = 0;
  char* b = reinterpret_cast<char*>(out);
  while (off < sizeof(Result)) {
    ssize_t n = read(c.fd, b + off, sizeof(Result) - off);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  close(c.fd);
  c.fd = -1;
  c.pid = -1;
  return exited && off == sizeof(Result);
}

}  // namespace amalgam::bench

#endif  // AMALGAM_BENCH_CHILD_PROCESS_H_
