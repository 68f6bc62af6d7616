// DPDK set-up for the fabric: the EAL (once per process) and one Ethernet port on a virtual
// device (net_memif, net_af_packet, ...) hot-plugged after EAL start, with its mbuf pool and one
// Rx/Tx queue pair. Measured facts behind the defaults: shared/notes/dpdk.md.
#ifndef AMALGAM_FABRIC_DPDK_DPDK_PORT_H_
#define AMALGAM_FABRIC_DPDK_DPDK_PORT_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

struct rte_mbuf;
struct rte_mempool;

namespace amalgam::fabric {

struct EalOptions {
  int lcore = 0;              // EAL -l (the main lcore id)
  int memory_mb = 256;        // -m with --no-huge
  std::string file_prefix;    // --file-prefix; empty: "amalgam<pid>" (unique per process)
  bool keep_pinning = false;  // EAL pins the calling thread to `lcore`; by default undo that
  std::string log_level = "warning";
  std::vector<std::string> extra_args;  // appended verbatim (e.g. "--single-file-segments")
};

// Starts DPDK's EAL with --no-huge --no-pci --no-shconf --no-telemetry (works in Bazel's sandbox
// and without hugepages). The EAL can start once per process: later calls return OK if it is up
// (their options are ignored), or the first call's error. Thread-safe.
absl::Status InitEal(const EalOptions& options);
// The arguments InitEal passes to rte_eal_init (for logs and the README).
std::vector<std::string> EalArguments(const EalOptions& options);
bool EalInitialized();

struct DpdkPortOptions {
  // Virtual device and its arguments, e.g.
  //   "net_memif0,role=server,socket=/run/x/memif.sock"   (one process)
  //   "net_memif0,role=client,socket=/run/x/memif.sock"   (the other)
  //   "net_af_packet0,iface=veth0"
  // The name before the first comma must be unique within the process.
  std::string devargs;
  uint32_t mbufs = 8191;           // pool size (room for chained mbufs and retransmit copies)
  uint16_t mbuf_data_room = 2048;  // bytes per segment (plus headroom); chains carry the rest
  uint16_t rx_descriptors = 1024;
  uint16_t tx_descriptors = 1024;
  absl::Duration link_timeout = absl::Seconds(20);  // Open waits for link up this long
};

// One started port. Thread-safety: RxBurst must be called by one thread at a time and TxBurst by
// one thread at a time (callers lock); everything else is immutable after Open. Owns the port,
// the vdev and the mempool; destruction stops and detaches them (the EAL stays up).
class DpdkPort {
 public:
  // Requires InitEal. Probes the vdev, configures 1 Rx + 1 Tx queue (multi-segment Tx when the
  // PMD offers it), starts it and waits for link up (UNAVAILABLE on timeout, e.g. a memif peer
  // that never connected).
  static absl::StatusOr<std::unique_ptr<DpdkPort>> Open(const DpdkPortOptions& options);
  ~DpdkPort();
  DpdkPort(const DpdkPort&) = delete;
  DpdkPort& operator=(const DpdkPort&) = delete;

  uint16_t port_id() const { return port_; }
  rte_mempool* pool() const { return pool_; }
  const std::array<uint8_t, 6>& mac() const { return mac_; }
  bool multi_segment_tx() const { return multi_seg_; }
  // Largest frame (Ethernet header included) the PMD accepts.
  uint32_t max_frame() const { return max_frame_; }
  bool LinkUp() const;
  // Stops the port (memif: disconnects from the peer) without detaching it. Idempotent.
  void Stop();

  uint16_t RxBurst(rte_mbuf** mbufs, uint16_t n);
  // Returns how many the PMD took; the caller still owns (and must free or retry) the rest.
  uint16_t TxBurst(rte_mbuf** mbufs, uint16_t n);

 private:
  DpdkPort() = default;
  uint16_t port_ = 0;
  rte_mempool* pool_ = nullptr;
  std::array<uint8_t, 6> mac_{};
  bool multi_seg_ = false;
  uint32_t max_frame_ = 1518;
  bool have_port_ = false;
  bool started_ = false;
  std::string name_;
  std::string server_socket_;  // memif server socket to unlink on close
};

}  // namespace amalgam::fabric

#endif  // AMALGAM_FABRIC_DPDK_DPDK_PORT_H_
