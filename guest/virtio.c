/* Ring-3 virtio-mmio driver of the test guest (see virtio.h). */
#include "virtio.h"

#define REG(off) ((off) / 4)
#define R_MAGIC 0x000
#define R_VERSION 0x004
#define R_DEVICE_ID 0x008
#define R_DEV_FEAT 0x010
#define R_DEV_FEAT_SEL 0x014
#define R_DRV_FEAT 0x020
#define R_DRV_FEAT_SEL 0x024
#define R_QUEUE_SEL 0x030
#define R_QUEUE_NUM_MAX 0x034
#define R_QUEUE_NUM 0x038
#define R_QUEUE_READY 0x044
#define R_QUEUE_NOTIFY 0x050
#define R_STATUS 0x070
#define R_DESC_LO 0x080
#define R_DESC_HI 0x084
#define R_DRIVER_LO 0x090
#define R_DRIVER_HI 0x094
#define R_DEVICE_LO 0x0a0
#define R_DEVICE_HI 0x0a4
#define R_CONFIG 0x100

#define S_ACK 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8
#define S_NEEDS_RESET 64

/* ~26 s at 2.6 GHz: a slow, loaded host is not a broken device. */
#define POLL_TIMEOUT_CYCLES (1ull << 36)

static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }
static inline u64 rdtsc_(void) {
  u32 lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return ((u64)hi << 32) | lo;
}

static u32 rd(struct vdev *d, u32 off) { return d->regs[REG(off)]; }
static void wr(struct vdev *d, u32 off, u32 v) { d->regs[REG(off)] = v; }

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0; }

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* `virtio_mmio.device=<size>@<base>:<irq>[:<id>]`; size in decimal or hex with an optional K/M
 * suffix, base in hex (0x...) or decimal, as Linux's parser accepts. We only need the base. */
u32 virtio_find(u64 *bases, u32 max) {
  static const char key[] = "virtio_mmio.device=";
  const char *s = g_boot.cmdline;
  u32 n = 0;
  for (u32 i = 0; s[i] != 0 && n < max; i++) {
    if (i != 0 && !is_space(s[i - 1])) continue;
    u32 k = 0;
    while (key[k] != 0 && s[i + k] == key[k]) k++;
    if (key[k] != 0) continue;
    const char *p = s + i + k;
    while (!is_space(*p) && *p != '@') p++;
    if (*p != '@') continue;
    p++;
    u64 base = 0;
    int hex = p[0] == '0' && (p[1] == 'x' || p[1] == 'X');
    if (hex) p += 2;
    int digits = 0;
    for (; hex ? hexval(*p) >= 0 : (*p >= '0' && *p <= '9'); p++, digits++) {
      base = hex ? base * 16 + (u64)hexval(*p) : base * 10 + (u64)(*p - '0');
    }
    if (digits == 0 || base >= (4ull << 30) - 0x200) continue; /* identity map ends at 4 GiB */
    bases[n++] = base;
  }
  return n;
}

u64 virtio_offered(struct vdev *d) {
  wr(d, R_DEV_FEAT_SEL, 1);
  u64 hi = rd(d, R_DEV_FEAT);
  wr(d, R_DEV_FEAT_SEL, 0);
  return (hi << 32) | rd(d, R_DEV_FEAT);
}

u32 virtio_config32(struct vdev *d, u32 offset) { return rd(d, R_CONFIG + offset); }

static void zero(volatile u8 *p, u64 n) {
  for (u64 i = 0; i < n; i++) p[i] = 0;
}

const char *virtio_open(struct vdev *d, u32 device_id, u64 wanted, u32 nqueues, u64 mem) {
  u64 bases[VIRTIO_MAX_DEVICES];
  u32 n = virtio_find(bases, VIRTIO_MAX_DEVICES);
  if (n == 0) return "no virtio_mmio.device= on the command line";
  d->regs = 0;
  for (u32 i = 0; i < n; i++) {
    volatile u32 *regs = (volatile u32 *)bases[i];
    if (regs[REG(R_MAGIC)] != 0x74726976 || regs[REG(R_DEVICE_ID)] != device_id) continue;
    if (regs[REG(R_VERSION)] != 2) return "device is legacy virtio-mmio (version 1)";
    d->regs = regs;
    break;
  }
  if (d->regs == 0) return "no virtio-mmio device of this type";
  d->device_id = device_id;
  wr(d, R_STATUS, 0);
  wr(d, R_STATUS, S_ACK);
  wr(d, R_STATUS, S_ACK | S_DRIVER);
  u64 offered = virtio_offered(d);
  if (!(offered & (1ull << 32))) return "device does not offer VERSION_1";
  d->features = (offered & wanted) | (1ull << 32);
  wr(d, R_DRV_FEAT_SEL, 0);
  wr(d, R_DRV_FEAT, (u32)d->features);
  wr(d, R_DRV_FEAT_SEL, 1);
  wr(d, R_DRV_FEAT, (u32)(d->features >> 32));
  wr(d, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
  if (!(rd(d, R_STATUS) & S_FEATURES_OK)) return "device refused FEATURES_OK";
  for (u32 q = 0; q < nqueues; q++) {
    struct vq *vq = &d->q[q];
    wr(d, R_QUEUE_SEL, q);
    u32 max = rd(d, R_QUEUE_NUM_MAX);
    if (max == 0) return "queue missing (QueueNumMax 0)";
    vq->size = max < VQ_SIZE ? (u16)max : VQ_SIZE;
    vq->index = (u16)q;
    vq->avail_idx = vq->used_seen = 0;
    u64 base = mem + (u64)q * 8192;
    vq->desc = (volatile u8 *)base;
    vq->avail = (volatile u16 *)(base + 4096);
    vq->used = (volatile u8 *)(base + 6144);
    zero((volatile u8 *)base, 8192);
    vq->avail[0] = 1; /* VRING_AVAIL_F_NO_INTERRUPT: we poll, interrupts would only cost */
    wr(d, R_QUEUE_NUM, vq->size);
    wr(d, R_DESC_LO, (u32)base);
    wr(d, R_DESC_HI, (u32)(base >> 32));
    wr(d, R_DRIVER_LO, (u32)(base + 4096));
    wr(d, R_DRIVER_HI, 0);
    wr(d, R_DEVICE_LO, (u32)(base + 6144));
    wr(d, R_DEVICE_HI, 0);
    wr(d, R_QUEUE_READY, 1);
    if (rd(d, R_QUEUE_READY) != 1) return "queue not ready after QueueReady=1";
  }
  wr(d, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
  if (rd(d, R_STATUS) & S_NEEDS_RESET) return "device needs reset right after DRIVER_OK";
  return 0;
}

void virtio_post(struct vdev *d, u32 q, const struct vseg *segs, u32 n, u16 first) {
  struct vq *vq = &d->q[q];
  for (u32 i = 0; i < n; i++) {
    volatile u8 *desc = vq->desc + 16 * ((first + i) % vq->size);
    *(volatile u64 *)desc = segs[i].addr;
    *(volatile u32 *)(desc + 8) = segs[i].len;
    *(volatile u16 *)(desc + 12) = (u16)((i + 1 < n ? 1 : 0) | (segs[i].writable ? 2 : 0));
    *(volatile u16 *)(desc + 14) = (u16)((first + i + 1) % vq->size);
  }
  vq->avail[2 + vq->avail_idx % vq->size] = first;
  barrier(); /* x86 keeps stores in order; the compiler must too */
  vq->avail_idx++;
  vq->avail[1] = vq->avail_idx;
  barrier();
  wr(d, R_QUEUE_NOTIFY, vq->index);
}

long virtio_wait_used(struct vdev *d, u32 q, u64 timeout_cycles, u32 *id) {
  struct vq *vq = &d->q[q];
  u64 start = rdtsc_();
  volatile u16 *used_idx = (volatile u16 *)(vq->used + 2);
  for (u64 spins = 1; *used_idx == vq->used_seen; spins++) {
    /* Every status read is an exit to the VMM: look only now and then. */
    if ((spins & 0xfff) == 0 && (rd(d, R_STATUS) & S_NEEDS_RESET)) return -1;
    if (rdtsc_() - start > timeout_cycles) return -1;
    __asm__ volatile("pause");
  }
  barrier();
  volatile u8 *elem = vq->used + 4 + 8 * (vq->used_seen % vq->size);
  if (id) *id = *(volatile u32 *)elem;
  long len = *(volatile u32 *)(elem + 4);
  vq->used_seen++;
  return len;
}

long virtio_submit(struct vdev *d, u32 q, const struct vseg *segs, u32 n) {
  if (n == 0 || n > d->q[q].size) return -1;
  /* One request in flight: the chain always starts at descriptor 0. */
  virtio_post(d, q, segs, n, 0);
  return virtio_wait_used(d, q, POLL_TIMEOUT_CYCLES, 0);
}

u32 virtio_status(struct vdev *d) { return rd(d, R_STATUS); }

int virtio_submit_raw(struct vdev *d, u32 q, u64 addr, u32 len, u16 flags, u16 next) {
  struct vq *vq = &d->q[q];
  volatile u8 *desc = vq->desc;
  *(volatile u64 *)desc = addr;
  *(volatile u32 *)(desc + 8) = len;
  *(volatile u16 *)(desc + 12) = flags;
  *(volatile u16 *)(desc + 14) = next;
  vq->avail[2 + vq->avail_idx % vq->size] = 0;
  barrier();
  vq->avail_idx++;
  vq->avail[1] = vq->avail_idx;
  barrier();
  wr(d, R_QUEUE_NOTIFY, vq->index);
  u64 start = rdtsc_();
  volatile u16 *used_idx = (volatile u16 *)(vq->used + 2);
  for (;;) {
    if (rd(d, R_STATUS) & S_NEEDS_RESET) return 1;
    if (*used_idx != vq->used_seen) {
      vq->used_seen++;
      return 0;
    }
    if (rdtsc_() - start > POLL_TIMEOUT_CYCLES) return -1;
    __asm__ volatile("pause");
  }
}
