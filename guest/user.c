/* Ring-3 part of the test guest: command-line parsing and the workloads. Native speed under PVM.
 * Every CPU enters user_main(cpu); the BSP (cpu 0) runs the workload, the APs serve `smp`. */
#include "compute.h"
#include "guest.h"
#include "virtio_workloads.h"

#define ONE_GIB (1ull << 30)
/* Hang guards, in TSC cycles (TSC ~2.6 GHz here): APs that never arrive fail after ~6 s; the
 * end barrier waits much longer because a preempted vCPU thread is slow, not broken. */
#define SMP_ARRIVE_TIMEOUT_CYCLES (1ull << 34)
#define SMP_DONE_TIMEOUT_CYCLES (1ull << 37)

struct args {
  u64 mib;
  u64 iters;
  const char *bad_key; /* first key with an unparsable value, or 0 */
  int mib_given;       /* mib= was on the command line */
  u32 bad_key_len;
};

static u32 g_smp_arrived;
static u32 g_smp_go;
static u32 g_smp_done;
static u64 g_smp_counter;
static u64 g_smp_iters;
static u32 g_smp_ap_errors; /* APs whose lock xadd saw a non-increasing old value */

static inline void cpu_relax(void) { __asm__ volatile("pause"); }

static inline u64 rdtsc(void) {
  u32 lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return ((u64)hi << 32) | lo;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static void write_n(const char *s, u32 n) {
  char buf[65];
  u32 i = 0;
  for (; i < n && i < 64; i++) buf[i] = s[i];
  buf[i] = 0;
  serial_write(buf);
}

static int word_is(const char *w, u32 n, const char *lit) {
  u32 i = 0;
  for (; i < n && lit[i] != 0; i++) {
    if (w[i] != lit[i]) return 0;
  }
  return i == n && lit[i] == 0;
}

/* Parses decimal value [v, v+n); returns 0 on junk, overflow (> 1e12) or emptiness. */
static int parse_u64(const char *v, u32 n, u64 *out) {
  u64 x = 0;
  if (n == 0 || n > 12) return 0;
  for (u32 i = 0; i < n; i++) {
    if (v[i] < '0' || v[i] > '9') return 0;
    x = x * 10 + (u64)(v[i] - '0');
  }
  *out = x;
  return 1;
}

static void parse_param(const char *w, u32 n, struct args *a) {
  u32 eq = 0;
  while (eq < n && w[eq] != '=') eq++;
  if (eq == n) return; /* not key=value: ignored */
  u64 *slot = 0;
  if (word_is(w, eq, "mib")) {
    slot = &a->mib;
    a->mib_given = 1;
  }
  if (word_is(w, eq, "iters")) slot = &a->iters;
  if (slot == 0) return; /* unknown keys (and cpus=, handled by ring 0) are ignored */
  if (!parse_u64(w + eq + 1, n - eq - 1, slot) && a->bad_key == 0) {
    a->bad_key = w;
    a->bad_key_len = eq;
  }
}

static void fail_line(const char *name, const char *reason) {
  serial_lock();
  serial_write(name);
  serial_write(": FAIL ");
  serial_write(reason);
  serial_write("\n");
  serial_unlock();
}

/* The RAM region free for workloads: from the 2 MiB boundary above the image to the end of the
 * memmap RAM entry that holds it, capped at 4 GiB (the identity map's end). */
int free_ram(u64 *base, u64 *size) {
  u64 start = ((u64)__image_end + 0x1FFFFF) & ~0x1FFFFFull;
  for (u32 i = 0; i < g_boot.memmap_entries; i++) {
    const struct memmap_entry *e = &g_boot.memmap[i];
    if (e->type != 1 || start < e->addr || start >= e->addr + e->size) continue;
    u64 end = e->addr + e->size;
    if (end > 4 * ONE_GIB) end = 4 * ONE_GIB;
    *base = start;
    *size = end - start;
    return 1;
  }
  return 0;
}

/* Checks mib against free RAM; prints the failure line itself. */
static u64 *workload_buffer(const char *name, u64 mib) {
  u64 base, size;
  if (mib == 0) {
    fail_line(name, "mib must be at least 1");
    return 0;
  }
  if (!free_ram(&base, &size)) {
    fail_line(name, "no PVH memory map (start info version 0?) or no RAM above the image");
    return 0;
  }
  if (mib > (size >> 20)) {
    serial_lock();
    serial_write(name);
    serial_write(": FAIL mib=");
    serial_write_dec(mib);
    serial_write(" exceeds the free RAM above the image (");
    serial_write_dec(size >> 20);
    serial_write(" MiB)\n");
    serial_unlock();
    return 0;
  }
  return (u64 *)base;
}

static int run_hello(void) {
  serial_write("hello: Hello from the amalgam test guest\n");
  return 1;
}

static inline u64 memtouch_pattern(u64 addr) {
  return addr ^ ((addr >> 12) * 0x9E3779B97F4A7C15ull) ^ 0xA5A5A5A5A5A5A5A5ull;
}

static int run_memtouch(const struct args *a) {
  u64 *buf = workload_buffer("memtouch", a->mib);
  if (buf == 0) return 0;
  u64 words = (a->mib << 20) / 8;
  for (u64 i = 0; i < words; i++) buf[i] = memtouch_pattern((u64)&buf[i]);
  for (u64 i = 0; i < words; i++) {
    u64 want = memtouch_pattern((u64)&buf[i]);
    u64 got = ((volatile u64 *)buf)[i];
    if (got != want) {
      serial_write("memtouch: FAIL mismatch at 0x");
      serial_write_hex((u64)&buf[i], 0);
      serial_write(" got 0x");
      serial_write_hex(got, 16);
      serial_write(" want 0x");
      serial_write_hex(want, 16);
      serial_write("\n");
      return 0;
    }
  }
  serial_write("memtouch: ok mib=");
  serial_write_dec(a->mib);
  serial_write(" pages=");
  serial_write_dec(a->mib * 256);
  serial_write("\n");
  return 1;
}

static int run_compute(const struct args *a) {
  u64 *buf = workload_buffer("compute", a->mib);
  if (buf == 0) return 0;
  u64 sum = amalgam_compute_checksum(buf, (a->mib << 20) / 8);
  serial_write("compute: ok mib=");
  serial_write_dec(a->mib);
  serial_write(" checksum=0x");
  serial_write_hex(sum, 16);
  serial_write("\n");
  return 1;
}

/* Both forms of locked increment, alternating: `lock xadd` (returns the old value) and
 * `lock inc`. Each old value seen must exceed the previous one: one location, atomic RMWs. */
static int smp_increment(u64 iters) {
  u64 last = 0;
  int monotonic = 1;
  for (u64 i = 0; i < iters; i++) {
    if (i & 1) {
      __asm__ volatile("lock incq %0" : "+m"(g_smp_counter) : : "memory", "cc");
    } else {
      u64 old = 1;
      __asm__ volatile("lock xaddq %0, %1" : "+r"(old), "+m"(g_smp_counter) : : "memory", "cc");
      if (i != 0 && old <= last) monotonic = 0;
      last = old;
    }
  }
  return monotonic;
}

/* Waits until *v >= want or the timeout passes; returns the last value seen. */
static u32 wait_at_least(u32 *v, u32 want, u64 timeout_cycles) {
  u64 start = rdtsc();
  u32 seen;
  while ((seen = __atomic_load_n(v, __ATOMIC_ACQUIRE)) < want) {
    if (rdtsc() - start > timeout_cycles) break;
    cpu_relax();
  }
  return seen;
}

static int run_smp(const struct args *a) {
  u32 cpus = g_boot.cpus_requested;
  if (g_boot.cpus_invalid) {
    fail_line("smp", "cpus= must be a number from 1 to 64");
    return 0;
  }
  /* Barrier, phase 1: every AP has checked in (they start as soon as the SIPI lands). */
  u32 arrived = wait_at_least(&g_smp_arrived, cpus - 1, SMP_ARRIVE_TIMEOUT_CYCLES) + 1;
  if (arrived < cpus) {
    serial_write("smp: FAIL only ");
    serial_write_dec(arrived);
    serial_write(" of ");
    serial_write_dec(cpus);
    serial_write(" cpus arrived (does the VM have that many vCPUs?)\n");
    return 0;
  }
  __atomic_store_n(&g_smp_iters, a->iters, __ATOMIC_RELAXED);
  __atomic_store_n(&g_smp_go, 1, __ATOMIC_RELEASE); /* phase 2: release everyone at once */
  int monotonic = smp_increment(a->iters);
  __atomic_fetch_add(&g_smp_done, 1, __ATOMIC_ACQ_REL);
  u32 done = wait_at_least(&g_smp_done, cpus, SMP_DONE_TIMEOUT_CYCLES);
  u64 counter = __atomic_load_n(&g_smp_counter, __ATOMIC_ACQUIRE);
  if (done < cpus || counter != (u64)cpus * a->iters || !monotonic ||
      __atomic_load_n(&g_smp_ap_errors, __ATOMIC_ACQUIRE) != 0) {
    serial_write("smp: FAIL cpus=");
    serial_write_dec(cpus);
    serial_write(" done=");
    serial_write_dec(done);
    serial_write(" counter=");
    serial_write_dec(counter);
    serial_write(" want=");
    serial_write_dec((u64)cpus * a->iters);
    serial_write(" xadd_order_errors=");
    serial_write_dec(!monotonic + __atomic_load_n(&g_smp_ap_errors, __ATOMIC_ACQUIRE));
    serial_write("\n");
    return 0;
  }
  serial_write("smp: ok cpus=");
  serial_write_dec(cpus);
  serial_write(" counter=");
  serial_write_dec(counter);
  serial_write("\n");
  return 1;
}

static void ap_main(void) __attribute__((noreturn));
static void ap_main(void) {
  __atomic_fetch_add(&g_smp_arrived, 1, __ATOMIC_ACQ_REL);
  while (__atomic_load_n(&g_smp_go, __ATOMIC_ACQUIRE) == 0) cpu_relax();
  if (!smp_increment(__atomic_load_n(&g_smp_iters, __ATOMIC_RELAXED))) {
    __atomic_fetch_add(&g_smp_ap_errors, 1, __ATOMIC_ACQ_REL);
  }
  __atomic_fetch_add(&g_smp_done, 1, __ATOMIC_ACQ_REL);
  for (;;) cpu_relax(); /* ring 3 cannot hlt; the BSP ends the VM */
}

void user_main(u32 cpu) {
  if (cpu != 0) ap_main();
  const char *s = g_boot.cmdline;
  while (is_space(*s)) s++;
  const char *name = s;
  u32 name_len = 0;
  while (name[name_len] != 0 && !is_space(name[name_len])) name_len++;
  struct args a = {16, 100000, 0, 0, 0};
  const char *p = name;
  for (u32 i = 0; i < name_len; i++) {
    if (name[i] == '=') { /* the first word is a parameter: default workload */
      name_len = 0;
      break;
    }
  }
  if (name_len != 0) p = name + name_len;
  while (*p) {
    while (is_space(*p)) p++;
    const char *w = p;
    while (*p != 0 && !is_space(*p)) p++;
    if (p != w) parse_param(w, (u32)(p - w), &a);
  }
  if (a.bad_key != 0) {
    serial_write("amalgam-guest: bad value for ");
    write_n(a.bad_key, a.bad_key_len);
    serial_write(" (want a decimal number)\n");
    guest_exit(1);
  }
  int ok;
  if (name_len == 0 || word_is(name, name_len, "hello")) {
    ok = run_hello();
  } else if (word_is(name, name_len, "memtouch")) {
    ok = run_memtouch(&a);
  } else if (word_is(name, name_len, "smp")) {
    ok = run_smp(&a);
  } else if (word_is(name, name_len, "compute")) {
    ok = run_compute(&a);
  } else if (word_is(name, name_len, "blk")) {
    ok = run_blk(a.mib_given ? a.mib : 4);
  } else if (word_is(name, name_len, "blkro")) {
    ok = run_blkro();
  } else if (word_is(name, name_len, "blkread")) {
    ok = run_blkread(a.mib_given ? a.mib : 0);
  } else if (word_is(name, name_len, "blkbad")) {
    ok = run_blkbad();
  } else if (word_is(name, name_len, "net")) {
    ok = run_net();
  } else if (word_is(name, name_len, "rng")) {
    ok = run_rng();
  } else if (word_is(name, name_len, "console")) {
    ok = run_vconsole();
  } else if (word_is(name, name_len, "fault")) {
    __asm__ volatile("ud2"); /* the ring-0 #UD handler reports it and exits 1 */
    ok = 0;
  } else {
    serial_write("amalgam-guest: unknown workload ");
    write_n(name, name_len);
    serial_write("\n");
    ok = 0;
  }
  guest_exit(ok ? 0 : 1);
}
