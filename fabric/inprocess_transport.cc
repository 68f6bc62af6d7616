#include "fabric/inprocess_transport.h"

#include <atomic>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "fabric/peer_session.h"
#include "fabric/receive_queue.h"

namespace amalgam::fabric {

// One direction-pair of sessions with one peer. The send session is used under send_mu (which
// also keeps frames to that peer in order); the receive session under rx_mu.
struct InProcessLink {
  InProcessLink(NodeId self, NodeId peer, const FrameKey& key)
      : tx(self, peer, key), rx(self, peer, key) {}
  absl::Mutex send_mu;
  PeerSession tx ABSL_GUARDED_BY(send_mu);
  absl::Mutex rx_mu;
  PeerSession rx ABSL_GUARDED_BY(rx_mu);
};

class InProcessTransport::Impl {
 public:
  explicit Impl(const FrameKey& cluster_key) : cluster_key(cluster_key) {}

  InProcessLink* LinkTo(NodeId self, NodeId peer) {
    absl::MutexLock lock(&mu);
    auto& link = links[peer];
    if (link == nullptr) {
      // Both endpoints derive the same key for the pair, as after a Hello exchange.
      uint8_t lo[kNonceSize] = {}, hi[kNonceSize] = {};
      NodeId a = self < peer ? self : peer, b = self < peer ? peer : self;
      std::memcpy(lo, &a, sizeof(a));
      std::memcpy(hi, &b, sizeof(b));
      link = std::make_unique<InProcessLink>(self, peer, cluster_key.DeriveSession(lo, hi));
    }
    return link.get();
  }

  FrameKey cluster_key;
  absl::Mutex mu;
  absl::flat_hash_map<NodeId, std::unique_ptr<InProcessLink>> links ABSL_GUARDED_BY(mu);
  ReceiveQueue queue;
  DropCounters drops;
  std::atomic<bool> closed{false};
  std::atomic<uint64_t> frames_sent{0}, frames_received{0}, bytes_sent{0}, bytes_received{0};
};

InProcessHub::InProcessHub(const FrameKey& cluster_key) : cluster_key_(cluster_key) {}

absl::StatusOr<std::unique_ptr<InProcessTransport>> InProcessHub::Connect(NodeId id) {
  absl::MutexLock lock(&mu_);
  if (endpoints_.contains(id)) {
    return absl::AlreadyExistsError(absl::StrCat("node ", id, " is already on this hub"));
  }
  std::unique_ptr<InProcessTransport> t(new InProcessTransport(this, id));
  endpoints_[id] = t.get();
  return t;
}

absl::Status InProcessHub::Deliver(NodeId src, NodeId dst, FrameBuffer frame) {
  absl::ReaderMutexLock lock(&mu_);
  auto it = endpoints_.find(dst);
  if (it == endpoints_.end()) {
    return absl::NotFoundError(absl::StrCat("node ", dst, " is not on this in-process hub"));
  }
  it->second->Accept(src, std::move(frame));
  return absl::OkStatus();
}

void InProcessHub::Detach(NodeId id) {
  absl::MutexLock lock(&mu_);
  endpoints_.erase(id);
}

InProcessTransport::InProcessTransport(InProcessHub* hub, NodeId self)
    : hub_(hub), self_(self), impl_(std::make_unique<Impl>(hub->cluster_key_)) {}

InProcessTransport::~InProcessTransport() { Close(); }

absl::Status InProcessTransport::SendFrame(NodeId dst, const OutgoingFrame& frame) {
  if (impl_->closed.load()) return absl::CancelledError("fabric transport closed");
  InProcessLink* link = impl_->LinkTo(self_, dst);
  absl::MutexLock lock(&link->send_mu);
  EncodedFrame encoded;
  absl::Status s = link->tx.Encode(frame, &encoded);
  if (!s.ok()) return s;
  FrameBuffer buffer = FrameBuffer::Allocate(encoded.size());
  encoded.CopyTo(buffer.data());
  size_t size = buffer.size();
  s = hub_->Deliver(self_, dst, std::move(buffer));
  if (s.ok()) {
    impl_->frames_sent.fetch_add(1);
    impl_->bytes_sent.fetch_add(size);
  }
  return s;
}

void InProcessTransport::Accept(NodeId src, FrameBuffer frame) {
  if (impl_->closed.load()) return;
  InProcessLink* link = impl_->LinkTo(self_, src);
  size_t size = frame.size();
  absl::MutexLock lock(&link->rx_mu);
  DropReason why = DropReason::kBadBody;
  auto message = link->rx.Decode(std::move(frame), &why);
  if (!message.ok()) {
    impl_->drops.Count(why);
    return;
  }
  impl_->frames_received.fetch_add(1);
  impl_->bytes_received.fetch_add(size);
  impl_->queue.Push(*std::move(message));
}

absl::StatusOr<ReceivedMessage> InProcessTransport::Receive(absl::Duration timeout) {
  return impl_->queue.Pop(timeout);
}

void InProcessTransport::Close() {
  if (impl_->closed.exchange(true)) return;
  hub_->Detach(self_);
  impl_->queue.Close();
}

TransportStats InProcessTransport::GetStats() const {
  TransportStats s;
  s.frames_sent = impl_->frames_sent.load();
  s.frames_received = impl_->frames_received.load();
  s.bytes_sent = impl_->bytes_sent.load();
  s.bytes_received = impl_->bytes_received.load();
  s.drops = impl_->drops.Snapshot();
  return s;
}

}  // namespace amalgam::fabric
