// TimedTransport (benchmarks only): a fabric::Transport that forwards to another one and records
// when each frame left (SendFrame returned) and arrived (Receive returned), with its message type
// and a caller-set tag (e.g. the index of the fault being measured). Lets a benchmark split a
// remote fault into its fabric round trip without touching the transport itself.
// Thread-safety: thread-safe, like the Transport it wraps. Ownership: borrows `inner`.
#ifndef AMALGAM_BENCH_NODE_TIMED_TRANSPORT_H_
#define AMALGAM_BENCH_NODE_TIMED_TRANSPORT_H_

#include <time.h>

#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "fabric/transport.h"

namespace amalgam::bench {

inline int64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

class TimedTransport : public fabric::Transport {
 public:
  struct Event {
    int64_t tag;
    uint16_t type;  // schema::Message::Which
    bool sent;      // false: received
    int64_t ns;     // CLOCK_MONOTONIC
  };

  explicit TimedTransport(fabric::Transport* inner) : inner_(inner) {}

  void set_tag(int64_t tag) { tag_.store(tag, std::memory_order_release); }
  std::vector<Event> TakeEvents() {
    absl::MutexLock l(&mu_);
    return std::move(events_);
  }

  fabric::NodeId self() const override { return inner_->self(); }
  absl::Status SendFrame(fabric::NodeId dst, const fabric::OutgoingFrame& frame) override {
    absl::Status s = inner_->SendFrame(dst, frame);
    if (s.ok()) Record(frame.type, true);
    return s;
  }
  absl::StatusOr<fabric::ReceivedMessage> Receive(absl::Duration timeout) override {
    absl::StatusOr<fabric::ReceivedMessage> m = inner_->Receive(timeout);
    if (m.ok()) Record(static_cast<uint16_t>(m->type()), false);
    return m;
  }
  void Close() override { inner_->Close(); }
  fabric::TransportStats GetStats() const override { return inner_->GetStats(); }

 private:
  void Record(uint16_t type, bool sent) {
    const int64_t ns = MonotonicNs();
    absl::MutexLock l(&mu_);
    events_.push_back({tag_.load(std::memory_order_acquire), type, sent, ns});
  }

  fabric::Transport* const inner_;
  std::atomic<int64_t> tag_{-1};
  absl::Mutex mu_;
  std::vector<Event> events_ ABSL_GUARDED_BY(mu_);
};

}  // namespace amalgam::bench

#endif  // AMALGAM_BENCH_NODE_TIMED_TRANSPORT_H_
