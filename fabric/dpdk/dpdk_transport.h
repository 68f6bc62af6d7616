// DpdkTransport: the fabric over raw Ethernet frames on a DPDK port (net_memif between processes,
// net_af_packet on a veth or NIC). Link frame = Ethernet header (ethertype 0x88B5) + a fabric
// FrameHeader copy (src, dst, seq, frag_index/frag_count) + one chunk of the authenticated frame
// (fragmentation.h). Frames are the same bytes TCP carries: Hello handshake with the cluster key,
// then PeerSession's per-link key and sequence numbers. On top: acks (cumulative + SACK, frames
// flagged kFlagLinkAck and MAC'd with the session key), retransmission on timeout, duplicate
// suppression and in-order delivery (reliability.h), so a lossy link still gives Transport's
// per-peer FIFO, exactly-once contract.
// Progress: Receive() polls the port itself (no thread hop on the hot path); a background poller
// takes over, with the idle policy, while nobody is in Receive.
// Thread-safety: thread-safe (see Transport); one internal lock serializes port access.
// Ownership: owns its DpdkPort, the poller thread and every in-flight mbuf. The EAL stays up.
#ifndef AMALGAM_FABRIC_DPDK_DPDK_TRANSPORT_H_
#define AMALGAM_FABRIC_DPDK_DPDK_TRANSPORT_H_

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fabric/cluster_key.h"
#include "fabric/dpdk/dpdk_port.h"
#include "fabric/dpdk/fragmentation.h"
#include "fabric/dpdk/idle_policy.h"
#include "fabric/dpdk/reliability.h"
#include "fabric/transport.h"

namespace amalgam::fabric {

inline constexpr uint16_t kFabricEtherType = 0x88B5;  // IEEE local experimental
inline constexpr size_t kEthHeaderSize = 14;
// FrameHeader.flags bit used only on DPDK links: a link-level ack (seq = cumulative, rpc_id =
// SACK bits), never delivered to Receive.
inline constexpr uint8_t kFlagLinkAck = 0x80;
// A link-level goodbye (bodiless, MAC'd with the session key) sent by Close() before the ports
// stop: the peer stops transmitting to us first, because DPDK 22.11's memif can crash a Tx
// that runs while the interrupt thread tears the rings down after the other side left.
inline constexpr uint8_t kFlagLinkBye = 0x40;

struct DpdkTransportOptions {
  NodeId self = 0;
  FrameKey cluster_key = FrameKey::FromBytes({});
  EalOptions eal;        // used if the EAL is not up yet (InitEal)
  DpdkPortOptions port;  // devargs: the vdev (memif role/socket, af_packet iface, ...)
  // Every other node reachable on this port -> its MAC ("02:00:00:00:00:02"), or "" to send to
  // broadcast until the peer's authenticated Hello reveals it.
  std::map<NodeId, std::string> peers;
  // Peers with a point-to-point port of their own (net_memif: one memif pair per node pair; see
  // fabric/dpdk/memif_cluster.h), node id -> that port. Their frames use only that port. With
  // only peer_ports, leave port.devargs empty. Ports open in ascending peer id (deadlock-free
  // when every node does so), each waiting for link up.
  std::map<NodeId, DpdkPortOptions> peer_ports;
  size_t mtu = 1500;  // link payload bytes (after the Ethernet header); larger frames fragment
  RetransmitOptions retransmit;
  ReassemblyLimits reassembly;
  IdlePolicy idle;
  absl::Duration hello_interval = absl::Milliseconds(10);  // until the peer is confirmed
  absl::Duration send_timeout = absl::Seconds(2);  // SendFrame waits this long for window room
  int64_t ack_delay_ns = 50'000;                   // coalesce acks this long...
  size_t ack_every = 16;                           // ...or this many frames
  // TEST ONLY: drop this fraction of received link frames (all kinds) before parsing, with a
  // fixed seed, to exercise retransmission where the kernel has no netem. 0 in production.
  double test_rx_drop_rate = 0;
  uint32_t test_rx_drop_seed = 1;
};

// Link-level counters beyond TransportStats.
struct DpdkLinkStats {
  uint64_t link_frames_sent = 0;
  uint64_t link_frames_received = 0;
  uint64_t retransmits = 0;
  uint64_t acks_sent = 0;
  uint64_t acks_received = 0;
  uint64_t hellos_sent = 0;
  uint64_t held_hellos = 0;      // new-nonce Hellos on a live link, held until proven
  uint64_t byes_received = 0;    // peers that closed their link in order (kFlagLinkBye)
  uint64_t duplicates = 0;       // data frames already delivered or held (suppressed)
  uint64_t beyond_window = 0;    // data frames too far ahead of the reorder window
  uint64_t no_session = 0;       // frames from a configured peer before its Hello arrived
  uint64_t not_for_us = 0;       // Ethernet destination is neither our MAC nor broadcast
  uint64_t other_ethertype = 0;  // not 0x88B5 (ignored, e.g. kernel chatter on a veth)
  uint64_t tx_ring_full = 0;     // link frames the PMD refused (retransmission repairs them)
  uint64_t test_rx_dropped = 0;  // frames dropped by test_rx_drop_rate
  ReassemblyCounters reassembly;
  std::string ToString() const;
};

class DpdkTransport : public Transport {
 public:
  // Starts the EAL if needed, opens the port(s) (waiting for link up), starts the poller and
  // begins the Hello handshake with every peer.
  static absl::StatusOr<std::unique_ptr<DpdkTransport>> Create(DpdkTransportOptions options);
  ~DpdkTransport() override;

  // Waits until `peer` answered the handshake with authenticated traffic.
  absl::Status WaitForPeer(NodeId peer, absl::Duration timeout);
  // Waits until every frame sent so far is acknowledged (e.g. before a process exits).
  absl::Status Flush(absl::Duration timeout);
  std::array<uint8_t, 6> mac() const;  // of the shared port (else of the first peer port)
  DpdkLinkStats GetLinkStats() const;

  NodeId self() const override;
  absl::Status SendFrame(NodeId dst, const OutgoingFrame& frame) override;
  absl::StatusOr<ReceivedMessage> Receive(absl::Duration timeout) override;
  void Close() override;
  TransportStats GetStats() const override;

  class Impl;

 private:
  explicit DpdkTransport(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Parses "aa:bb:cc:dd:ee:ff". INVALID_ARGUMENT names the bad text.
absl::StatusOr<std::array<uint8_t, 6>> ParseMac(const std::string& text);

}  // namespace amalgam::fabric

#endif  // AMALGAM_FABRIC_DPDK_DPDK_TRANSPORT_H_
