/* The byte pattern the `blk` workload writes to the disk, as a function of the disk offset of
 * each 8-byte word. Shared with host tests, which check the disk file byte for byte. */
#ifndef AMALGAM_GUEST_BLK_PATTERN_H_
#define AMALGAM_GUEST_BLK_PATTERN_H_

static inline unsigned long long amalgam_blk_pattern(unsigned long long disk_offset) {
  unsigned long long x = disk_offset * 0x9E3779B97F4A7C15ull;
  return x ^ (x >> 29) ^ 0x5BD1E9955BD1E995ull;
}

#endif
