// Transport: moves authenticated frames between nodes. Implementations: InProcessTransport
// (tests), TcpTransport (default), DpdkTransport (kernel bypass, fabric/dpdk/).
// Thread-safety: every method may be called from any thread; Send is safe concurrently with
// Receive; frames to one destination arrive in the order of the Send calls that returned OK
// (per-peer FIFO; no order across peers). Nothing is delivered twice.
// Ownership: a Transport owns its connections, threads and receive queue; Close() or destruction
// stops them. Received messages own their buffers independently of the transport.
#ifndef AMALGAM_FABRIC_TRANSPORT_H_
#define AMALGAM_FABRIC_TRANSPORT_H_

#include <capnp/message.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "fabric/drop_counters.h"
#include "fabric/frame.h"
#include "fabric/message.h"

namespace amalgam::fabric {

struct TransportStats {
  uint64_t frames_sent = 0;
  uint64_t frames_received = 0;  // delivered to Receive (after all checks)
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  uint64_t connects = 0;     // links established (handshake done), incl. reconnects
  uint64_t disconnects = 0;  // links lost
  DropSnapshot drops;        // received frames thrown away, by reason
  std::string ToString() const;
};

struct SendOptions {
  uint64_t rpc_id = 0;
  uint8_t flags = 0;  // kFlagRpcRequest / kFlagRpcReply
};

class Transport {
 public:
  virtual ~Transport() = default;

  virtual NodeId self() const = 0;

  // Sends one frame to `dst`. Returns once the frame is handed to the link (queued in the kernel
  // or NIC), not when it is delivered. Errors: NOT_FOUND (unknown dst), UNAVAILABLE (no link to
  // dst right now; the caller or RpcChannel retries), INVALID_ARGUMENT (oversized parts),
  // CANCELLED (closed). A frame whose Send failed was not delivered, and later frames to dst
  // keep their order.
  virtual absl::Status SendFrame(NodeId dst, const OutgoingFrame& frame) = 0;

  // Waits up to `timeout` for the next received message from any peer. DEADLINE_EXCEEDED when
  // none arrived, CANCELLED once closed. Meant for one consumer thread (e.g. an RpcChannel).
  virtual absl::StatusOr<ReceivedMessage> Receive(absl::Duration timeout) = 0;

  // Stops threads, closes links, wakes Receive. Idempotent.
  virtual void Close() = 0;

  virtual TransportStats GetStats() const = 0;

  // Convenience: flattens `message` (root schema::Message) and sends it with an optional page.
  absl::Status Send(NodeId dst, capnp::MessageBuilder& message, absl::Span<const uint8_t> page = {},
                    const SendOptions& options = {});
};

}  // namespace amalgam::fabric

#endif  // AMALGAM_FABRIC_TRANSPORT_H_
