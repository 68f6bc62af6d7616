/* The `compute` workload's arithmetic, shared by the guest (freestanding) and a host test that pins
 * the expected checksum. Integer-only and fully specified, so every compiler and VMM agrees. */
#ifndef AMALGAM_GUEST_COMPUTE_H_
#define AMALGAM_GUEST_COMPUTE_H_

/* Fills words qwords at buf with an xorshift64* stream, then folds them with an FNV-1a-style mix
 * (read back from memory, so the checksum covers what the RAM really holds). */
static inline unsigned long long amalgam_compute_checksum(unsigned long long *buf,
                                                          unsigned long long words) {
  unsigned long long x = 0x9E3779B97F4A7C15ull;
  for (unsigned long long i = 0; i < words; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    buf[i] = x * 0x2545F4914F6CDD1Dull;
  }
  unsigned long long h = 0xCBF29CE484222325ull;
  for (unsigned long long i = 0; i < words; i++) {
    h = (h ^ ((volatile unsigned long long *)buf)[i]) * 0x100000001B3ull;
    h ^= h >> 29;
  }
  return h;
}

#endif
