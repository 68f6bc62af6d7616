// Test helpers for DpdkTransport: each fabric node runs in its own forked process (the EAL can
// start once per process), runs a page-stream role and reports a plain struct through a pipe.
// Thread-safety: call from a single-threaded test process. Test-only.
#ifndef AMALGAM_FABRIC_DPDK_DPDK_TEST_UTIL_H_
#define AMALGAM_FABRIC_DPDK_DPDK_TEST_UTIL_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "fabric/dpdk/dpdk_transport.h"
#include "testutil/child_process.h"

namespace amalgam::fabric::testing {

// What one node process reports. Trivially copyable (crosses a pipe).
struct NodeReport {
  int ok = 0;
  char error[240] = {0};
  uint64_t pages = 0;         // pages sent (sender) or received intact and in order (receiver)
  uint64_t bad_pages = 0;     // wrong content or length
  uint64_t out_of_order = 0;  // page number other than the next expected (dup, gap, reorder)
  uint64_t wrong_type = 0;
  uint64_t drops[kDropReasonCount] = {0};
  uint64_t retransmits = 0;
  uint64_t test_rx_dropped = 0;
  uint64_t duplicates = 0;
  uint64_t not_for_us = 0;
  uint64_t link_frames_received = 0;
  uint64_t reassembled = 0;
  uint64_t connects = 0;
  uint64_t disconnects = 0;
  uint64_t first_page = 0;   // receiver: page number of the first page it got
  uint64_t held_hellos = 0;  // new-nonce Hellos held on a live link (DpdkLinkStats)
};

// Fills the page for page number `n` with a pattern unique to n; CheckPage verifies all of it.
void FillPage(uint64_t n, uint8_t* page);
bool CheckPage(uint64_t n, const uint8_t* page, size_t size);

// Sender role: waits for `peer`, sends pages 0..count-1 as PageGrant + 4 KiB payload, then
// waits for the receiver's "done" (a PageRequest for page `count`). If `go_fd` >= 0 it first
// reads one byte from it (lets a test inject frames before the real traffic).
NodeReport RunPageSender(DpdkTransportOptions options, NodeId peer, uint64_t count, int go_fd = -1,
                         int ready_fd = -1);
// Receiver role: expects pages 0..count-1 from `peer`, in order, intact; then sends "done".
// With `any_start`, the first page may have any number (joining a running stream); the rest
// must follow it consecutively.
NodeReport RunPageReceiver(DpdkTransportOptions options, NodeId peer, uint64_t count,
                           bool any_start = false);
// Streamer role: sends pages 0, 1, 2, ... to `peer` (waiting out a full window or an absent
// peer) until a "done" arrives `dones` times or `seconds` pass.
NodeReport RunPageStreamer(DpdkTransportOptions options, NodeId peer, int dones, int seconds);

using Child = testutil::Child;
// Forks; the child runs fn(), writes the report to a pipe and _exit()s.
Child ForkNode(const std::function<NodeReport()>& fn);
// Waits (killing the child after `timeout`); a missing report comes back with ok = 0.
NodeReport WaitNode(Child& child, std::chrono::milliseconds timeout);

// A directory for memif sockets: short enough for sun_path, unique per process.
std::string ShortTempDir();

}  // namespace amalgam::fabric::testing

#endif  // AMALGAM_FABRIC_DPDK_DPDK_TEST_UTIL_H_
