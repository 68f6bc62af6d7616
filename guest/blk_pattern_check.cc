// blk_pattern_check DISK MIB: exit 0 when the first MIB MiB of DISK hold the pattern the test
// guest's `blk` workload writes (guest/blk_pattern.h), byte for byte; otherwise prints the first
// differing offset and exits 1 (2 for usage or I/O errors).
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "guest/blk_pattern.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: blk_pattern_check DISK MIB\n");
    return 2;
  }
  FILE* f = fopen(argv[1], "rb");
  if (f == nullptr) {
    fprintf(stderr, "blk_pattern_check: %s: %s\n", argv[1], strerror(errno));
    return 2;
  }
  const uint64_t bytes = strtoull(argv[2], nullptr, 10) << 20;
  for (uint64_t off = 0; off < bytes; off += 8) {
    uint64_t want = amalgam_blk_pattern(off), got;
    if (fread(&got, 8, 1, f) != 1) {
      fprintf(stderr, "blk_pattern_check: %s ends before %" PRIu64 " bytes\n", argv[1], bytes);
      return 1;
    }
    if (memcmp(&got, &want, 8) != 0) {
      fprintf(stderr, "blk_pattern_check: %s differs at offset %" PRIu64 "\n", argv[1], off);
      return 1;
    }
  }
  fclose(f);
  return 0;
}
