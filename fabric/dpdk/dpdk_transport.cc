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
      " hellos_sent=", hellos_sent, " duplicates=", duplicates, " beyond_window=", beyond_window,
      " no_session=", no_session, " not_for_us=", not_for_us, " other_ethertype=", other_ethertype,
      " tx_ring_full=", tx_ring_full, " test_rx_dropped=", test_rx_dropped,
      " reassembled=", reassembly.completed, " dup_fragments=", reassembly.duplicate_fragments,
      " inconsistent_fragments=", reassembly.inconsistent_fragments,
      " bad_geometry=", reassembly.bad_geometry, " reassembly_full=", reassembly.table_full,
      " reassembly_timeouts=", reassembly.timed_out);
}

DpdkTransport::DpdkTransport(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DpdkTransport::~DpdkTransport() { impl_->Close(); }

absl::StatusOr<std::unique_ptr<DpdkTransport>> DpdkTransport::Create(DpdkTransportOptions o) {
  if (o.mtu < kFrameHeaderSize + 64 || o.mtu > 9000) {
    return absl::InvalidArgumentError(absl::StrCat("DpdkTransportOptions.mtu = ", o.mtu,
                                                   "; use 1500 (standard) up to 9000 (jumbo)"));
  }
  if (o.peers.count(o.self)) {
    return absl::InvalidArgumentError("DpdkTransportOptions.peers must not contain self");
  }
  if (absl::StartsWith(o.port.devargs, "net_memif")) {
    // memif carries a frame larger than its buffer as a descriptor chain, and DPDK 22.11's memif
    // Tx leaves a broken chain behind when its ring fills mid-frame (the peer then receives
    // 2 KiB pieces as separate frames). One buffer per frame avoids chains altogether.
    size_t bsize = 2048;
    for (absl::string_view kv : absl::StrSplit(o.port.devargs, ',')) {
      if (absl::ConsumePrefix(&kv, "bsize=")) bsize = std::strtoul(std::string(kv).c_str(), 0, 0);
    }
    if (o.mtu + kEthHeaderSize > bsize) {
      return absl::InvalidArgumentError(absl::StrCat(
          "memif buffers (bsize=", bsize, ") are smaller than a link frame (mtu ", o.mtu,
          " + 14); add bsize=", o.mtu + kEthHeaderSize > 8192 ? 16384 : 8192,
          " to the memif devargs on both sides, or use mtu <= ", bsize - kEthHeaderSize));
    }
  }
  absl::Status s = InitEal(o.eal);
  if (!s.ok()) return s;
  auto port = DpdkPort::Open(o.port);
  if (!port.ok()) return port.status();
  if (o.mtu + kEthHeaderSize > (*port)->max_frame() && !(*port)->multi_segment_tx()) {
    return absl::InvalidArgumentError(absl::StrCat("mtu ", o.mtu, " exceeds what the port takes (",
                                                   (*port)->max_frame(), " bytes)"));
  }
  Mac mac = (*port)->mac();
  auto peers = o.peers;
  auto impl = std::make_unique<Impl>(std::move(o), std::move(*port));
  impl->set_port_mac(mac);
  for (const auto& [id, m] : peers) {
    s = impl->AddPeer(id, m);
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
