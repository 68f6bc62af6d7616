// The real-mode guest of the guest-measured fault benchmarks (bench/uffd, bench/node): it reads
// (entry kCode) or writes (entry kWriteEntry) one dword of each of kPages pages from kDataGpa on,
// timing each access with rdtsc around it, stores the deltas (u32 each) at kResults, then does
// `out 0x10` and `hlt`. Real mode is emulated on PVM hosts, so compare ratios, not absolutes.
#ifndef AMALGAM_BENCH_UFFD_REAL_MODE_TOUCH_GUEST_H_
#define AMALGAM_BENCH_UFFD_REAL_MODE_TOUCH_GUEST_H_

#include <time.h>
#include <x86intrin.h>

#include <cstdint>
#include <vector>

namespace amalgam::bench {

constexpr uint64_t kDataGpa = 0x80000;
constexpr uint64_t kPages = 32;  // what real mode reaches below 0xA0000 by stepping DS
constexpr uint64_t kCode = 0x1000;
constexpr uint64_t kWriteEntry = kCode + 0x29;
constexpr uint64_t kResults = 0x2000;  // ES:DI, one u32 TSC delta per page

// for cx = 32, ds = 0x8000 + 0x100*i: rdtsc; (read dword [0] | write dword [0]); rdtsc;
// store the delta at es:[0x2000 + 4*i]; then out 0x10 and hlt. Read pass at +0, write at +0x29.
inline const std::vector<uint8_t> kGuest = {
    0xb9, 0x20, 0x00, 0xbb, 0x00, 0x80, 0xbf, 0x00, 0x20, 0x8e, 0xdb, 0x0f, 0x31, 0x66,
    0x89, 0xc6, 0x66, 0xa1, 0x00, 0x00, 0x0f, 0x31, 0x66, 0x29, 0xf0, 0x26, 0x66, 0x89,
    0x05, 0x83, 0xc7, 0x04, 0x81, 0xc3, 0x00, 0x01, 0xe2, 0xe3, 0xe6, 0x10, 0xf4,  // read
    0xb9, 0x20, 0x00, 0xbb, 0x00, 0x80, 0xbf, 0x00, 0x20, 0x8e, 0xdb, 0x0f, 0x31, 0x66,
    0x89, 0xc6, 0x66, 0xa3, 0x00, 0x00, 0x0f, 0x31, 0x66, 0x29, 0xf0, 0x26, 0x66, 0x89,
    0x05, 0x83, 0xc7, 0x04, 0x81, 0xc3, 0x00, 0x01, 0xe2, 0xe3, 0xe6, 0x10, 0xf4,  // write
};

// Host TSC ticks per microsecond (guest TSC == host TSC on PVM and on most KVM hosts).
inline double TscPerUs() {
  timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  uint64_t t0 = __rdtsc();
  timespec d = {0, 50 * 1000 * 1000};
  nanosleep(&d, nullptr);
  clock_gettime(CLOCK_MONOTONIC, &b);
  uint64_t t1 = __rdtsc();
  double us = (b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) / 1e3;
  return (t1 - t0) / us;
}

}  // namespace amalgam::bench

#endif  // AMALGAM_BENCH_UFFD_REAL_MODE_TOUCH_GUEST_H_
