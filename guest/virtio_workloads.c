/* virtio workloads of the test guest: blk, blkro, blkread, rng, console (see README.md). */
#include "virtio_workloads.h"

#include "blk_pattern.h"
#include "virtio.h"

#define BLK_T_IN 0
#define BLK_T_OUT 1
#define BLK_T_FLUSH 4
#define BLK_T_GET_ID 8
#define BLK_F_RO (1ull << 5)
#define BLK_F_FLUSH (1ull << 9)
#define CHUNK (64 * 1024)

/* Scratch layout in free RAM: rings, then request header/status/id, then the data buffer. */
struct scratch {
  u64 rings;  /* 2 queues * 8 KiB */
  u64 hdr;    /* 16 bytes */
  u64 status; /* 1 byte */
  u64 id;     /* 20 bytes */
  u64 data;   /* CHUNK */
};

static int get_scratch(const char *name, struct scratch *s) {
  u64 base, size;
  if (!free_ram(&base, &size) || size < (1ull << 20)) {
    serial_write(name);
    serial_write(": FAIL no free RAM for virtqueues\n");
    return 0;
  }
  s->rings = base;
  s->hdr = base + 0x4000;
  s->status = base + 0x4100;
  s->id = base + 0x4200;
  s->data = base + 0x10000;
  return 1;
}

static int fail2(const char *name, const char *reason, const char *detail, u64 value) {
  serial_lock();
  serial_write(name);
  serial_write(": FAIL ");
  serial_write(reason);
  if (detail) {
    serial_write(detail);
    serial_write_dec(value);
  }
  serial_write("\n");
  serial_unlock();
  return 0;
}

static int open_or_fail(const char *name, struct vdev *d, u32 id, u64 wanted, u32 nq,
                        const struct scratch *s) {
  const char *err = virtio_open(d, id, wanted, nq, s->rings);
  if (err) return fail2(name, err, 0, 0);
  return 1;
}

/* One block request: header, optional data, status. Returns the status byte or -1. */
static int blk_request(struct vdev *d, const struct scratch *s, u32 type, u64 sector, u64 data,
                       u32 len, int device_writes) {
  volatile u32 *h = (volatile u32 *)s->hdr;
  h[0] = type;
  h[1] = 0;
  *(volatile u64 *)(s->hdr + 8) = sector;
  *(volatile u8 *)s->status = 0xff;
  struct vseg segs[3];
  u32 n = 0;
  segs[n++] = (struct vseg){s->hdr, 16, 0};
  if (len) segs[n++] = (struct vseg){data, len, device_writes};
  segs[n++] = (struct vseg){s->status, 1, 1};
  if (virtio_submit(d, 0, segs, n) < 0) return -1;
  return *(volatile u8 *)s->status;
}

static u64 blk_capacity(struct vdev *d) {
  return (u64)virtio_config32(d, 0) | ((u64)virtio_config32(d, 4) << 32);
}

int run_blk(u64 mib) {
  struct scratch s;
  struct vdev d;
  if (!get_scratch("blk", &s) || !open_or_fail("blk", &d, 2, BLK_F_FLUSH, 1, &s)) return 0;
  if (d.features & BLK_F_RO) return fail2("blk", "disk is read-only", 0, 0);
  if (!(d.features & BLK_F_FLUSH)) return fail2("blk", "device offers no FLUSH", 0, 0);
  const u64 bytes = mib << 20;
  if (mib == 0 || blk_capacity(&d) < bytes / 512) {
    return fail2("blk", "disk smaller than mib, sectors=", "", blk_capacity(&d));
  }
  u64 *buf = (u64 *)s.data;
  for (u64 off = 0; off < bytes; off += CHUNK) {
    for (u64 i = 0; i < CHUNK / 8; i++) buf[i] = amalgam_blk_pattern(off + i * 8);
    int st = blk_request(&d, &s, BLK_T_OUT, off / 512, s.data, CHUNK, 0);
    if (st != 0) return fail2("blk", "write status ", "", (u64)(long)st);
  }
  int st = blk_request(&d, &s, BLK_T_FLUSH, 0, 0, 0, 0);
  if (st != 0) return fail2("blk", "flush status ", "", (u64)(long)st);
  st = blk_request(&d, &s, BLK_T_GET_ID, 0, s.id, 20, 1);
  if (st != 0) return fail2("blk", "get-id status ", "", (u64)(long)st);
  for (u64 off = 0; off < bytes; off += CHUNK) {
    for (u64 i = 0; i < CHUNK / 8; i++) buf[i] = 0;
    st = blk_request(&d, &s, BLK_T_IN, off / 512, s.data, CHUNK, 1);
    if (st != 0) return fail2("blk", "read status ", "", (u64)(long)st);
    for (u64 i = 0; i < CHUNK / 8; i++) {
      if (((volatile u64 *)buf)[i] != amalgam_blk_pattern(off + i * 8)) {
        return fail2("blk", "mismatch at disk offset ", "", off + i * 8);
      }
    }
  }
  char id[21];
  for (int i = 0; i < 20; i++) {
    char c = ((volatile char *)s.id)[i];
    id[i] = (c > ' ' && c < 127) ? c : 0;
  }
  id[20] = 0;
  serial_lock();
  serial_write("blk: ok mib=");
  serial_write_dec(mib);
  serial_write(" id=");
  serial_write(id);
  serial_write("\n");
  serial_unlock();
  return 1;
}

int run_blkro(void) {
  struct scratch s;
  struct vdev d;
  if (!get_scratch("blkro", &s) || !open_or_fail("blkro", &d, 2, BLK_F_RO, 1, &s)) return 0;
  if (!(d.features & BLK_F_RO)) return fail2("blkro", "device does not offer RO", 0, 0);
  int st = blk_request(&d, &s, BLK_T_IN, 0, s.data, 512, 1);
  if (st != 0) return fail2("blkro", "read status ", "", (u64)(long)st);
  st = blk_request(&d, &s, BLK_T_OUT, 0, s.data, 512, 0);
  if (st != 1) return fail2("blkro", "write to a read-only disk got status ", "", (u64)(long)st);
  serial_write("blkro: ok write=ioerr\n");
  return 1;
}

int run_blkread(u64 mib) {
  struct scratch s;
  struct vdev d;
  if (!get_scratch("blkread", &s) || !open_or_fail("blkread", &d, 2, 0, 1, &s)) return 0;
  u64 bytes = mib ? mib << 20 : (blk_capacity(&d) * 512) & ~(u64)(CHUNK - 1);
  if (bytes == 0 || blk_capacity(&d) < bytes / 512) {
    return fail2("blkread", "disk smaller than mib, sectors=", "", blk_capacity(&d));
  }
  u64 sum = 0;
  for (u64 off = 0; off < bytes; off += CHUNK) {
    int st = blk_request(&d, &s, BLK_T_IN, off / 512, s.data, CHUNK, 1);
    if (st != 0) return fail2("blkread", "read status ", "", (u64)(long)st);
    sum += ((volatile u64 *)s.data)[0];
  }
  serial_lock();
  serial_write("blkread: ok mib=");
  serial_write_dec(bytes >> 20);
  serial_write(" sum=0x");
  serial_write_hex(sum, 16);
  serial_write("\n");
  serial_unlock();
  return 1;
}

/* A guest gone bad: a descriptor that loops onto itself, then one pointing outside RAM. The
 * device must flag DEVICE_NEEDS_RESET (not hang, not crash the VMM), and after a reset it must
 * serve a normal request again. */
int run_blkbad(void) {
  struct scratch s;
  struct vdev d;
  if (!get_scratch("blkbad", &s) || !open_or_fail("blkbad", &d, 2, 0, 1, &s)) return 0;
  int r = virtio_submit_raw(&d, 0, s.hdr, 16, 1 /* NEXT */, 0 /* itself */);
  if (r != 1) return fail2("blkbad", "loop not reported as needs-reset, result ", "", (u64)(long)r);
  if (open_or_fail("blkbad", &d, 2, 0, 1, &s) == 0) return 0;
  r = virtio_submit_raw(&d, 0, 0xfffffffff000ull, 4096, 0, 0); /* 1 TiB - 4 KiB: not RAM */
  if (r != 1) return fail2("blkbad", "bad address not reported, result ", "", (u64)(long)r);
  if (open_or_fail("blkbad", &d, 2, 0, 1, &s) == 0) return 0;
  int st = blk_request(&d, &s, BLK_T_IN, 0, s.data, 512, 1);
  if (st != 0) return fail2("blkbad", "read after reset, status ", "", (u64)(long)st);
  serial_write("blkbad: ok needs_reset=2 recovered=1\n");
  return 1;
}

#define NET_RX_BUFS 4
#define NET_BUF 2048
#define NET_HDR 12
static const u8 kGuestIp[4] = {10, 0, 2, 15};
static const u8 kPeerIp[4] = {10, 0, 2, 2};

static void put16be(volatile u8 *p, u16 v) {
  p[0] = (u8)(v >> 8);
  p[1] = (u8)v;
}

static void write_mac(const volatile u8 *m) {
  for (int i = 0; i < 6; i++) {
    if (i) serial_write(":");
    serial_write_hex(m[i], 2);
  }
}

/* ARP "who has 10.0.2.2, tell 10.0.2.15" out of virtio-net; the peer (a tap in the host's
 * network namespace with 10.0.2.2) must answer, and the answer must come back in. */
int run_net(void) {
  struct scratch s;
  struct vdev d;
  if (!get_scratch("net", &s) || !open_or_fail("net", &d, 1, 1ull << 5 /* MAC */, 2, &s)) return 0;
  if (!(d.features & (1ull << 5))) return fail2("net", "device offers no MAC", 0, 0);
  u8 mac[6];
  u32 lo = virtio_config32(&d, 0), hi = virtio_config32(&d, 4);
  for (int i = 0; i < 4; i++) mac[i] = (u8)(lo >> (8 * i));
  mac[4] = (u8)hi;
  mac[5] = (u8)(hi >> 8);
  u64 rx = s.data, tx = s.data + NET_RX_BUFS * NET_BUF;
  for (u16 i = 0; i < NET_RX_BUFS; i++) {
    struct vseg seg = {rx + (u64)i * NET_BUF, NET_BUF, 1};
    virtio_post(&d, 0, &seg, 1, i);
  }
  volatile u8 *f = (volatile u8 *)tx;
  for (int i = 0; i < NET_HDR + 60; i++) f[i] = 0;
  volatile u8 *e = f + NET_HDR;
  for (int i = 0; i < 6; i++) {
    e[i] = 0xff;
    e[6 + i] = mac[i];
    e[22 + i] = mac[i]; /* sender hardware address */
  }
  put16be(e + 12, 0x0806);
  put16be(e + 14, 1);      /* Ethernet */
  put16be(e + 16, 0x0800); /* IPv4 */
  e[18] = 6;
  e[19] = 4;
  put16be(e + 20, 1); /* request */
  for (int i = 0; i < 4; i++) {
    e[28 + i] = kGuestIp[i];
    e[38 + i] = kPeerIp[i];
  }
  struct vseg out = {tx, NET_HDR + 60, 0};
  if (virtio_submit(&d, 1, &out, 1) < 0) return fail2("net", "transmit not completed", 0, 0);
  for (int frames = 0; frames < 64; frames++) {
    u32 id = 0;
    long len = virtio_wait_used(&d, 0, 1ull << 35, &id);
    if (len < 0) return fail2("net", "no ARP reply, frames seen=", "", (u64)frames);
    if (id >= NET_RX_BUFS) return fail2("net", "bad used id ", "", id);
    volatile u8 *r = (volatile u8 *)(rx + (u64)id * NET_BUF) + NET_HDR;
    int is_reply = len >= NET_HDR + 42 && r[12] == 0x08 && r[13] == 0x06 && r[20] == 0 &&
                   r[21] == 2 && r[28] == kPeerIp[0] && r[29] == kPeerIp[1] &&
                   r[30] == kPeerIp[2] && r[31] == kPeerIp[3];
    if (is_reply) {
      serial_lock();
      serial_write("net: ok arp-reply from 10.0.2.2 mac=");
      write_mac(r + 22);
      serial_write("\n");
      serial_unlock();
      return 1;
    }
    struct vseg seg = {rx + (u64)id * NET_BUF, NET_BUF, 1}; /* not ours (IPv6 noise): recycle */
    virtio_post(&d, 0, &seg, 1, (u16)id);
  }
  return fail2("net", "64 frames without an ARP reply", 0, 0);
}

int run_rng(void) {
  struct scratch s;
  struct vdev d;
  if (!get_scratch("rng", &s) || !open_or_fail("rng", &d, 4, 0, 1, &s)) return 0;
  u64 a = s.data, b = s.data + 64;
  for (int i = 0; i < 128; i++) ((volatile u8 *)a)[i] = 0;
  struct vseg sa = {a, 64, 1}, sb = {b, 64, 1};
  long la = virtio_submit(&d, 0, &sa, 1), lb = virtio_submit(&d, 0, &sb, 1);
  if (la != 64 || lb != 64) return fail2("rng", "short read, bytes=", "", (u64)(la + lb));
  int nonzero = 0, differ = 0;
  for (int i = 0; i < 64; i++) {
    u8 x = ((volatile u8 *)a)[i], y = ((volatile u8 *)b)[i];
    nonzero |= x != 0;
    differ |= x != y;
  }
  if (!nonzero || !differ) return fail2("rng", "bytes are not random", 0, 0);
  serial_write("rng: ok bytes=128\n");
  return 1;
}

int run_vconsole(void) {
  static const char line[] = "virtio-console: hello from the amalgam test guest\n";
  struct scratch s;
  struct vdev d;
  if (!get_scratch("console", &s) || !open_or_fail("console", &d, 3, 0, 2, &s)) return 0;
  u32 n = sizeof(line) - 1;
  for (u32 i = 0; i < n; i++) ((volatile char *)s.data)[i] = line[i];
  struct vseg seg = {s.data, n, 0};
  if (virtio_submit(&d, 1, &seg, 1) < 0) return fail2("console", "transmit timed out", 0, 0);
  serial_write("console: ok bytes=");
  serial_write_dec(n);
  serial_write("\n");
  return 1;
}
