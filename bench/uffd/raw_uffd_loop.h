// RawUffdLoop (benchmarks only): the floor for fault service time. A bare poll/read/ioctl loop on
// a uffd: one message per read, no GPA translation, no bookkeeping; MISSING -> UFFDIO_COPY with
// MODE_WP from a fixed page, WP -> UFFDIO_WRITEPROTECT off. Registers [base, base + len) itself.
// Thread-safety: construct/destroy on one thread; the loop runs on its own thread.
// Ownership: owns the uffd and the thread.
#ifndef AMALGAM_BENCH_UFFD_RAW_UFFD_LOOP_H_
#define AMALGAM_BENCH_UFFD_RAW_UFFD_LOOP_H_

#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>

#include "memory/userfaultfd.h"

namespace amalgam::bench {

class RawUffdLoop {
 public:
  RawUffdLoop(uint8_t* base, uint64_t len, const uint8_t* content) : content_(content) {
    auto uffd = memory::Userfaultfd::Open();  // only for the open + API handshake
    if (!uffd.ok()) {
      fprintf(stderr, "userfaultfd: %s\n", uffd.status().ToString().c_str());
      exit(1);
    }
    uffd_ = std::move(*uffd);
    fd_ = uffd_->fd();
    uffdio_register reg = {};
    reg.range.start = reinterpret_cast<uint64_t>(base);
    reg.range.len = len;
    reg.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP;
    if (ioctl(fd_, UFFDIO_REGISTER, &reg) < 0) {
      perror("UFFDIO_REGISTER");
      exit(1);
    }
    stop_ = eventfd(0, EFD_CLOEXEC);
    thread_ = std::thread([this] { Loop(); });
  }
  ~RawUffdLoop() {
    uint64_t one = 1;
    (void)!write(stop_, &one, sizeof(one));
    thread_.join();
    close(stop_);
  }

 private:
  void Loop() {
    pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_, POLLIN, 0}};
    for (;;) {
      poll(fds, 2, -1);
      if (fds[1].revents) return;
      uffd_msg m;
      if (read(fd_, &m, sizeof(m)) != sizeof(m)) continue;
      if (m.event != UFFD_EVENT_PAGEFAULT) continue;
      uint64_t addr = m.arg.pagefault.address & ~uint64_t{4095};
      if (m.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) {
        uffdio_writeprotect wp = {{addr, 4096}, 0};
        ioctl(fd_, UFFDIO_WRITEPROTECT, &wp);
      } else {
        uffdio_copy c = {};
        c.dst = addr;
        c.src = reinterpret_cast<uint64_t>(content_);
        c.len = 4096;
        c.mode = UFFDIO_COPY_MODE_WP;
        ioctl(fd_, UFFDIO_COPY, &c);
      }
    }
  }

  const uint8_t* content_;
  std::unique_ptr<memory::Userfaultfd> uffd_;
  int fd_ = -1;
  int stop_ = -1;
  std::thread thread_;
};

}  // namespace amalgam::bench

#endif  // AMALGAM_BENCH_UFFD_RAW_UFFD_LOOP_H_
