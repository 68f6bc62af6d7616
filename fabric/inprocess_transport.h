// In-process fabric for testing the layers above (directory, node runtime) without sockets:
// an InProcessHub connects N endpoints; every frame still goes through the real encoder, MAC,
// replay window and decoder, so tests exercise the same bytes as the network transports.
// Thread-safety: hub and endpoints are thread-safe. The hub must outlive its endpoints.
#ifndef AMALGAM_FABRIC_INPROCESS_TRANSPORT_H_
#define AMALGAM_FABRIC_INPROCESS_TRANSPORT_H_

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "fabric/cluster_key.h"
#include "fabric/transport.h"

namespace amalgam::fabric {

class InProcessTransport;

class InProcessHub {
 public:
  explicit InProcessHub(const FrameKey& cluster_key);
  // Creates the endpoint of node `id`. ALREADY_EXISTS if the id is taken.
  absl::StatusOr<std::unique_ptr<InProcessTransport>> Connect(NodeId id);

 private:
  friend class InProcessTransport;
  // Delivers an encoded frame to `dst`'s endpoint (decoding it there).
  absl::Status Deliver(NodeId src, NodeId dst, FrameBuffer frame);
  void Detach(NodeId id);

  FrameKey cluster_key_;
  absl::Mutex mu_;
  absl::flat_hash_map<NodeId, InProcessTransport*> endpoints_ ABSL_GUARDED_BY(mu_);
};

class InProcessTransport : public Transport {
 public:
  ~InProcessTransport() override;
  NodeId self() const override { return self_; }
  absl::Status SendFrame(NodeId dst, const OutgoingFrame& frame) override;
  absl::StatusOr<ReceivedMessage> Receive(absl::Duration timeout) override;
  void Close() override;
  TransportStats GetStats() const override;

 private:
  friend class InProcessHub;
  InProcessTransport(InProcessHub* hub, NodeId self);
  void Accept(NodeId src, FrameBuffer frame);  // called by the hub on the sender's thread

  class Impl;
  InProcessHub* hub_;
  NodeId self_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace amalgam::fabric

#endif  // AMALGAM_FABRIC_INPROCESS_TRANSPORT_H_
