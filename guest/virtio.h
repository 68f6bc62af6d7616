/* A minimal virtio-mmio (version 2) driver for ring 3 of the test guest: devices are found on the
 * command line (`virtio_mmio.device=<size>@<addr>:<irq>`, as Linux takes them), rings live in
 * guest RAM (identity-mapped), and completions are polled from the used ring: no interrupts. */
#ifndef AMALGAM_GUEST_VIRTIO_H_
#define AMALGAM_GUEST_VIRTIO_H_

#include "guest.h"

#define VIRTIO_MAX_DEVICES 8
#define VQ_SIZE 16

struct vq {
  u16 size;
  u16 avail_idx;       /* next avail index we publish */
  u16 used_seen;       /* used entries consumed */
  u16 index;           /* queue number on the device */
  volatile u8 *desc;   /* 16-byte descriptors */
  volatile u16 *avail; /* flags, idx, ring[] */
  volatile u8 *used;   /* flags, idx, ring[] of {u32 id, u32 len} */
};

struct vdev {
  volatile u32 *regs;
  u32 device_id;
  u64 features; /* negotiated */
  struct vq q[2];
};

struct vseg {
  u64 addr;
  u32 len;
  int writable;
};

/* Scans the command line; returns how many virtio-mmio devices it names (and fills bases). */
u32 virtio_find(u64 *bases, u32 max);
/* Finds the first device with `device_id`, resets it, negotiates VERSION_1 plus `wanted` (only
 * those the device offers), sets up `nqueues` queues with ring memory from `mem` (>= 8 KiB per
 * queue). Returns 0 on success or a static reason string. */
const char *virtio_open(struct vdev *d, u32 device_id, u64 wanted, u32 nqueues, u64 mem);
/* Posts one chain on queue q, notifies, polls until the device uses it. Returns the used length
 * or -1 on timeout / device error. */
long virtio_submit(struct vdev *d, u32 q, const struct vseg *segs, u32 n);
/* Posts a chain at descriptors first.. (the caller keeps chains in flight apart) and notifies. */
void virtio_post(struct vdev *d, u32 q, const struct vseg *segs, u32 n, u16 first);
/* Waits for the next used entry of q: returns its length (and head in *id), -1 on timeout or
 * DEVICE_NEEDS_RESET. */
long virtio_wait_used(struct vdev *d, u32 q, u64 timeout_cycles, u32 *id);
u64 virtio_offered(struct vdev *d);
/* Posts descriptor 0 as given (flags/next raw, e.g. a loop), notifies, and waits until the
 * device either uses it or reports DEVICE_NEEDS_RESET. Returns 1 for needs-reset, 0 for used,
 * -1 on timeout. For the hostile-guest workload. */
int virtio_submit_raw(struct vdev *d, u32 q, u64 addr, u32 len, u16 flags, u16 next);
u32 virtio_status(struct vdev *d);
u32 virtio_config32(struct vdev *d, u32 offset);

#endif
