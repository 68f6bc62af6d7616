// TcpTransport: the default fabric transport. One TCP connection per peer pair (the node with
// the lower id connects, the higher one accepts), TCP_NODELAY, frames back to back on the
// stream (each frame's header carries its length), Hello handshake with the cluster key, then
// a per-connection session key. Lost connections are re-dialled with exponential backoff; frames
// sent while a link is down fail with UNAVAILABLE (on the accepting side, a Send while the
// peer's proof is one trip away waits up to 1 s for it instead). Frames already handed to the
// kernel when a link dies may be lost (never reordered or duplicated): callers' timeouts cover
// that (README.md, "Delivery contract").
// One epoll set covers all peers; a thread blocked in Receive() polls it itself, a background
// thread only when nobody receives; frames are cut from bulk reads (TcpFrameReader), uncopied.
// Senders write directly under a per-peer lock.
// Thread-safety: thread-safe (see Transport). Owns its sockets and its threads.
#ifndef AMALGAM_FABRIC_TCP_TRANSPORT_H_
#define AMALGAM_FABRIC_TCP_TRANSPORT_H_

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fabric/cluster_key.h"
#include "fabric/transport.h"

namespace amalgam::fabric {

struct TcpTransportOptions {
  NodeId self = 0;
  std::string listen_address = "127.0.0.1:0";  // host:port; port 0 picks a free one
  std::map<NodeId, std::string> peers;         // node id -> "host:port" (every other node)
  FrameKey cluster_key = FrameKey::FromBytes({});
  absl::Duration reconnect_min = absl::Milliseconds(20);
  absl::Duration reconnect_max = absl::Seconds(2);
  absl::Duration handshake_timeout = absl::Seconds(5);
  // Receive() polls without sleeping for this long before it blocks in epoll (spin-then-block:
  // a reply within a round trip then costs no wake-up). Zero: always block.
  absl::Duration receive_spin = absl::ZeroDuration();
};

class TcpTransport : public Transport {
 public:
  // Binds the listening socket and starts the receive thread; connections come up in the
  // background (WaitForPeer waits for one).
  static absl::StatusOr<std::unique_ptr<TcpTransport>> Create(TcpTransportOptions options);
  ~TcpTransport() override;

  // The bound port (useful with port 0).
  int listen_port() const;
  // Adds or changes a peer's address (e.g. once its ephemeral port is known).
  void SetPeerAddress(NodeId peer, const std::string& address);
  // Waits until the link to `peer` is up. DEADLINE_EXCEEDED otherwise.
  absl::Status WaitForPeer(NodeId peer, absl::Duration timeout);

  NodeId self() const override;
  absl::Status SendFrame(NodeId dst, const OutgoingFrame& frame) override;
  absl::StatusOr<ReceivedMessage> Receive(absl::Duration timeout) override;
  void Close() override;
  TransportStats GetStats() const override;

  class Impl;

 private:
  explicit TcpTransport(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Parses "host:port" (IPv4 dotted quad or "localhost"). INVALID_ARGUMENT names the problem.
absl::Status ParseHostPort(const std::string& address, std::string* host, int* port);

}  // namespace amalgam::fabric

#endif  // AMALGAM_FABRIC_TCP_TRANSPORT_H_
