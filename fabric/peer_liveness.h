// PeerLivenessMonitor: tells the owner when a peer node is gone. It sends a Heartbeat to every
// watched peer each `interval` and declares a peer lost when nothing at all (any frame) arrived
// from it for `timeout`, or when its link stayed down (sends failing with UNAVAILABLE, e.g. the
// TCP connection closed) for `link_down_grace` after it had been heard. Each loss is reported
// once, through the callback, with a one-line reason ("node 2: no frame for 2.0 s").
//
// It never calls Transport::Receive: the owner's receive loop (the node runtime, or an
// RpcChannel's one-way handler) calls Observe() (or OnFrameFrom()) for every frame it receives.
// Time advances either on the monitor's own timer thread (Start) or by the owner calling Tick().
//
// Thread-safety: every method is thread-safe; OnFrameFrom/Observe are lock-free (one atomic store)
// so they can sit on the receive hot path. The callback runs on the thread that calls Tick (the
// timer thread after Start) with no lock held; it must not call Stop() or destroy the monitor.
// Ownership: borrows the Transport (must outlive the monitor); owns its timer thread.
#ifndef AMALGAM_FABRIC_PEER_LIVENESS_H_
#define AMALGAM_FABRIC_PEER_LIVENESS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fabric/transport.h"

namespace amalgam::fabric {

struct LivenessOptions {
  absl::Duration interval = absl::Milliseconds(100);  // heartbeat period (and Tick period)
  absl::Duration timeout = absl::Seconds(2);          // silence that makes a heard peer lost
  // A peer never heard from since Start (or construction) is lost after this: nodes of a
  // cluster start at different times, so this is much longer than `timeout`.
  absl::Duration startup_timeout = absl::Seconds(30);
  // Once a peer was heard, sends to it failing with UNAVAILABLE for this long mean its link is
  // gone (TCP: connection closed and not re-established; DPDK: port link down).
  absl::Duration link_down_grace = absl::Milliseconds(500);
  uint64_t epoch = 0;  // put in every Heartbeat
  // Monotonic clock in ns; tests may substitute a fake one. Default: CLOCK_MONOTONIC.
  std::function<int64_t()> clock;
};

struct PeerLoss {
  NodeId node = 0;
  std::string reason;  // "node 2: no frame for 2.0 s", "node 2: connection closed (...)"
};

class PeerLivenessMonitor {
 public:
  using LostCallback = std::function<void(const PeerLoss&)>;

  // Watches `peers` (self is ignored). The silence clocks start now.
  PeerLivenessMonitor(Transport* transport, const std::vector<NodeId>& peers,
                      LivenessOptions options, LostCallback on_lost);
  ~PeerLivenessMonitor();
  PeerLivenessMonitor(const PeerLivenessMonitor&) = delete;
  PeerLivenessMonitor& operator=(const PeerLivenessMonitor&) = delete;

  // Starts the timer thread (calls Tick every interval). Without it, the owner calls Tick.
  void Start();
  // Stops the timer thread. Idempotent.
  void Stop();

  // A frame from `node` arrived (any type). Unknown nodes are ignored.
  void OnFrameFrom(NodeId node);
  // OnFrameFrom(message.source()); returns true if the message is a Heartbeat, which needs no
  // further handling by the owner.
  bool Observe(const ReceivedMessage& message);

  // Sends one Heartbeat to every peer not yet lost, checks every peer's deadlines and reports
  // new losses. The timer thread calls it every `interval`; an owner driving time calls it
  // itself at about that rate.
  void Tick();

  bool IsLost(NodeId node) const;
  std::vector<PeerLoss> Losses() const;  // in the order they were declared
  uint64_t heartbeats_sent() const { return heartbeats_sent_.load(std::memory_order_relaxed); }

 private:
  struct Peer {
    std::atomic<int64_t> last_heard_ns{-1};  // -1: never
    // Guarded by mu_ (atomics above are not).
    int64_t unavailable_since_ns = -1;  // first UNAVAILABLE send of the current run
    std::string unavailable_why;
    bool lost = false;
  };
  int64_t Now() const;
  void TimerLoop();

  Transport* const transport_;
  const LivenessOptions options_;
  const LostCallback on_lost_;
  const int64_t started_ns_;
  // The map is built in the constructor and never changes shape, so lookups need no lock.
  std::map<NodeId, std::unique_ptr<Peer>> peers_;
  std::atomic<uint64_t> heartbeats_sent_{0};

  mutable absl::Mutex mu_;
  std::vector<PeerLoss> losses_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex tick_mu_;  // one Tick at a time (timer thread and owner may both call it)
  std::thread timer_;
};

}  // namespace amalgam::fabric

#endif  // AMALGAM_FABRIC_PEER_LIVENESS_H_
