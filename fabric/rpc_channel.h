// RpcChannel: request/reply on top of a Transport, for the directory and the node runtime.
// A call sends a frame with kFlagRpcRequest and a fresh rpc_id and waits for the frame with
// kFlagRpcReply and the same id from that node. Server side: one handler per request type.
// Messages that are neither requests nor replies go to the default handler (one-way messages).
// The channel owns a dispatcher thread that is the transport's only Receive() consumer; handlers
// run on it, so a handler must not block on a Call to a peer whose reply this thread delivers.
// A Call polls for its reply (yielding) for up to 20 us before it sleeps on a condition: the
// dispatcher's hand-off then rarely needs a thread wake-up.
// Thread-safety: thread-safe. Does not own the transport, which must outlive the channel.
#ifndef AMALGAM_FABRIC_RPC_CHANNEL_H_
#define AMALGAM_FABRIC_RPC_CHANNEL_H_

#include <capnp/message.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fabric/transport.h"

namespace amalgam::fabric {

// What a handler returns: a reply message (root schema::Message) and an optional page payload
// (copied into the reply frame's send, so it may point into memory the handler reuses).
struct RpcReply {
  std::unique_ptr<capnp::MallocMessageBuilder> message;
  std::vector<uint8_t> page;  // empty: no payload
  // Replies with no page data but a borrowed span (e.g. a guest page still mapped): set this
  // instead of `page`; it must stay valid until the handler's reply has been sent.
  absl::Span<const uint8_t> borrowed_page;
};

class RpcChannel {
 public:
  // A request handler gets the request; it returns the reply, or an error status that is sent
  // back as an RpcError message (the caller's Call then returns that status).
  using Handler = std::function<absl::StatusOr<RpcReply>(const ReceivedMessage& request)>;
  using OneWayHandler = std::function<void(ReceivedMessage message)>;

  explicit RpcChannel(Transport* transport);
  ~RpcChannel();  // stops the dispatcher (does not close the transport)

  // Registers the handler for requests whose message is of type `type`. Call before traffic.
  void Handle(schema::Message::Which type, Handler handler);
  // Receives every message that is neither an RPC request nor a reply.
  void SetOneWayHandler(OneWayHandler handler);

  // Sends `request` (+ optional page) to `dst` and waits for its reply. DEADLINE_EXCEEDED after
  // `timeout` (a reply arriving later is dropped and counted as kLateReply); the status of an
  // RpcError reply; or the transport's Send error.
  absl::StatusOr<ReceivedMessage> Call(NodeId dst, capnp::MessageBuilder& request,
                                       absl::Duration timeout, absl::Span<const uint8_t> page = {});

  // Late/unknown replies and requests with no handler (the transport counts its own drops).
  DropSnapshot drops() const { return drops_.Snapshot(); }
  // Stops the dispatcher thread. Idempotent. Pending calls fail with CANCELLED.
  void Stop();

 private:
  struct PendingCall;
  void DispatchLoop();
  void OnReply(ReceivedMessage reply);
  void OnRequest(ReceivedMessage request);

  Transport* transport_;
  DropCounters drops_;
  std::atomic<uint64_t> next_id_{1};
  std::atomic<bool> stop_{false};
  absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, std::shared_ptr<PendingCall>> pending_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<int, Handler> handlers_ ABSL_GUARDED_BY(mu_);
  OneWayHandler one_way_ ABSL_GUARDED_BY(mu_);
  std::thread dispatcher_;
};

}  // namespace amalgam::fabric

#endif  // AMALGAM_FABRIC_RPC_CHANNEL_H_
