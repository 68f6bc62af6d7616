// ForkChild/WaitChild: runs a function in a forked child and collects its trivially copyable
// result through a pipe, killing the child if it overruns. For tests and benchmarks whose sides
// must live in separate processes (DPDK's EAL can be initialised once per process).
// Thread-safety: call from a single-threaded parent (fork).
#ifndef AMALGAM_TESTUTIL_CHILD_PROCESS_H_
#define AMALGAM_TESTUTIL_CHILD_PROCESS_H_

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>
#include <type_traits>

namespace amalgam::testutil {

struct Child {
  pid_t pid = -1;  // -1: fork failed (or already waited for)
  int fd = -1;     // read end of the result pipe
};

// Forks; the child runs fn() -> Result, writes it to the pipe and _exit()s (no atexit handlers:
// the parent's Catch2/absl state must not run twice).
template <typename Result, typename Fn>
Child ForkChild(Fn&& fn) {
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

// Waits up to `timeout` for the child (SIGKILL when it overruns; *timed_out says so) and reads
// its result. True only when the child exited and a complete result arrived. Resets `c`.
template <typename Result>
bool WaitChild(Child& c, Result* out, std::chrono::milliseconds timeout,
               bool* timed_out = nullptr) {
  if (timed_out != nullptr) *timed_out = false;
  if (c.pid < 0) return false;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  bool exited = false;
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(c.pid, &status, WNOHANG) == c.pid) {
      exited = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!exited) {
    kill(c.pid, SIGKILL);
    waitpid(c.pid, &status, 0);
    if (timed_out != nullptr) *timed_out = true;
  }
  size_t off = 0;
  char* b = reinterpret_cast<char*>(out);
  while (off < sizeof(Result)) {
    ssize_t n = read(c.fd, b + off, sizeof(Result) - off);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  close(c.fd);
  c = Child{};
  return exited && off == sizeof(Result);
}

}  // namespace amalgam::testutil

#endif  // AMALGAM_TESTUTIL_CHILD_PROCESS_H_
