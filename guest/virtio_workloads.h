/* Ring-3 workloads that drive virtio-mmio devices (virtio_workloads.c). Each prints its result
 * line and returns 1 on success. */
#ifndef AMALGAM_GUEST_VIRTIO_WORKLOADS_H_
#define AMALGAM_GUEST_VIRTIO_WORKLOADS_H_

#include "guest.h"

int run_blk(u64 mib);     /* write the pattern over mib MiB, flush, GET_ID, read back, verify */
int run_blkro(void);      /* read-only disk: F_RO offered, a write gets IOERR, a read works */
int run_blkread(u64 mib); /* stream mib MiB (0 = the whole disk) through reads (benchmarks) */
int run_blkbad(void);     /* hostile chains: device reports NEEDS_RESET, then works after reset */
int run_net(void);        /* ARP request for 10.0.2.2 out of virtio-net, the reply back in */
int run_rng(void);        /* two 64-byte requests: filled, and not equal */
int run_vconsole(void);   /* one line through virtio-console's transmit queue */

#endif
