#include "fabric/dpdk/dpdk_transport.h"

#include <cstdlib>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "fabric/dpdk/dpdk_transport_impl.h"

namespace amalgam::fabric {

absl::StatusOr<std::array<uint8_t, 6>> ParseMac(const std::string& text) {
  std::array<uint8_t, 6> mac{};
  unsigned v[6];
  char extra;
  if (std::sscanf(text.c_str(), "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                  &extra) != 6) {
    return absl::InvalidArgumentError(
        absl::StrCat("MAC address '", text, "' is not of the form aa:bb:cc:dd:ee:ff"));
  }
  for (int i = 0; i < 6; ++i) {
    if (v[i] > 255) return absl::InvalidArgumentError(absl::StrCat("MAC '", text, "' byte > ff"));
    mac[i] = static_cast<uint8_t>(v[i]);
  }
  return mac;
}

std::string DpdkLinkStats::ToString() const {
  return absl::StrCat(
      "link_sent=", link_frames_sent, " link_received=", link_frames_received,
      " retransmits=", retransmits, " acks_sent=", acks_sent, " acks_received=", acks_received,
      " hellos_sent=", hellos_sent, " held_hellos=", held_hellos, " byes=", byes_received,
      " duplicates=", duplicates, " beyond_window=", beyond_window, " no_session=", no_session,
      " not_for_us=", not_for_us, " other_ethertype=", other_ethertype,
      " tx_ring_full=", tx_ring_full, " test_rx_dropped=", test_rx_dropped,
      " reassembled=", reassembly.completed, " dup_fragments=", reassembly.duplicate_fragments,
      " inconsistent_fragments=", reassembly.inconsistent_fragments,
      " bad_geometry=", reassembly.bad_geometry, " reassembly_full=", reassembly.table_full,
      " reassembly_timeouts=", reassembly.timed_out);
}

DpdkTransport::DpdkTransport(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DpdkTransport::~DpdkTransport() { impl_->Close(); }

namespace {

// memif carries a frame larger than its buffer as a descriptor chain, and DPDK 22.11's memif Tx
// leaves a broken chain behind when its ring fills mid-frame (the peer then receives 2 KiB
// pieces as separate frames). One buffer per frame avoids chains altogether.
absl::Status CheckMemifBuffers(const std::string& devargs, size_t mtu) {
  if (!absl::StartsWith(devargs, "net_memif")) return absl::OkStatus();
  size_t bsize = 2048;
  for (absl::string_view kv : absl::StrSplit(devargs, ',')) {
    if (absl::ConsumePrefix(&kv, "bsize=")) bsize = std::strtoul(std::string(kv).c_str(), 0, 0);
  }
  if (mtu + kEthHeaderSize > bsize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "memif buffers (bsize=", bsize, ") are smaller than a link frame (mtu ", mtu,
        " + 14); add bsize=", mtu + kEthHeaderSize > 8192 ? 16384 : 8192,
        " to the memif devargs on both sides, or use mtu <= ", bsize - kEthHeaderSize));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<DpdkPort>> OpenPort(const DpdkPortOptions& port, size_t mtu) {
  auto opened = DpdkPort::Open(port);
  if (!opened.ok()) return opened.status();
  if (mtu + kEthHeaderSize > (*opened)->max_frame() && !(*opened)->multi_segment_tx()) {
    return absl::InvalidArgumentError(absl::StrCat("mtu ", mtu, " exceeds what the port takes (",
                                                   (*opened)->max_frame(), " bytes)"));
  }
  return opened;
}

}  // namespace

absl::StatusOr<std::unique_ptr<DpdkTransport>> DpdkTransport::Create(DpdkTransportOptions o) {
  if (o.mtu < kFrameHeaderSize + 64 || o.mtu > 9000) {
    return absl::InvalidArgumentError(absl::StrCat("DpdkTransportOptions.mtu = ", o.mtu,
                                                   "; use 1500 (standard) up to 9000 (jumbo)"));
  }
  if (o.peers.count(o.self) || o.peer_ports.count(o.self)) {
    return absl::InvalidArgumentError(
        "DpdkTransportOptions.peers and peer_ports must not contain self");
  }
  for (const auto& [id, port] : o.peer_ports) {
    if (o.peers.count(id)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "node ", id, " is in both DpdkTransportOptions.peers and peer_ports; pick one"));
    }
    absl::Status s = CheckMemifBuffers(port.devargs, o.mtu);
    if (!s.ok()) return s;
  }
  const bool shared_port = !o.port.devargs.empty();
  if (!shared_port && !o.peers.empty()) {
    return absl::InvalidArgumentError(
        "DpdkTransportOptions.peers needs port.devargs (the port they are reachable on)");
  }
  if (!shared_port && o.peer_ports.empty()) {
    return absl::InvalidArgumentError(
        "DpdkTransportOptions: set port.devargs (one shared port) or peer_ports (a port per peer)");
  }
  absl::Status s = CheckMemifBuffers(o.port.devargs, o.mtu);
  if (!s.ok()) return s;
  s = InitEal(o.eal);
  if (!s.ok()) return s;
  std::vector<std::unique_ptr<DpdkPort>> ports;
  if (shared_port) {
    auto port = OpenPort(o.port, o.mtu);
    if (!port.ok()) return port.status();
    ports.push_back(*std::move(port));
  }
  // Ascending peer id: every node opens its point-to-point ports in the global order of node
  // pairs, so nodes that each wait for one link to come up never wait for each other in a cycle.
  std::vector<std::pair<NodeId, size_t>> own_ports;
  for (const auto& [id, port_options] : o.peer_ports) {
    auto port = OpenPort(port_options, o.mtu);
    if (!port.ok()) {
      return absl::Status(port.status().code(),
                          absl::StrCat("port for node ", id, " (", port_options.devargs,
                                       "): ", port.status().message()));
    }
    own_ports.emplace_back(id, ports.size());
    ports.push_back(*std::move(port));
  }
  auto peers = o.peers;
  auto impl = std::make_unique<Impl>(std::move(o), std::move(ports));
  for (const auto& [id, m] : peers) {
    s = impl->AddPeer(id, m, 0);
    if (!s.ok()) return s;
  }
  for (const auto& [id, index] : own_ports) {
    s = impl->AddPeer(id, "", index);
    if (!s.ok()) return s;
  }
  impl->StartPoller();
  return std::unique_ptr<DpdkTransport>(new DpdkTransport(std::move(impl)));
}

absl::Status DpdkTransport::WaitForPeer(NodeId peer, absl::Duration timeout) {
  return impl_->WaitForPeer(peer, timeout);
}
absl::Status DpdkTransport::Flush(absl::Duration timeout) { return impl_->Flush(timeout); }
std::array<uint8_t, 6> DpdkTransport::mac() const { return impl_->mac(); }
DpdkLinkStats DpdkTransport::GetLinkStats() const { return impl_->GetLinkStats(); }
NodeId DpdkTransport::self() const { return impl_->self(); }
absl::Status DpdkTransport::SendFrame(NodeId dst, const OutgoingFrame& frame) {
  return impl_->SendFrame(dst, frame);
}
absl::StatusOr<ReceivedMessage> DpdkTransport::Receive(absl::Duration timeout) {
  return impl_->Receive(timeout);
}
void DpdkTransport::Close() { impl_->Close(); }
TransportStats DpdkTransport::GetStats() const { return impl_->GetStats(); }

}  // namespace amalgam::fabric
