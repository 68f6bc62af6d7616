// Internal: NodeRuntime's implementation (see node_runtime.h). The loop thread is the only one
// that touches cache_, home_, store_, local_, timers_ and resident_; the other threads hand it
// work through the queues under mu_.
#ifndef AMALGAM_VMM_NODE_RUNTIME_IMPL_H_
#define AMALGAM_VMM_NODE_RUNTIME_IMPL_H_

#include <array>
#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "directory/home_directory.h"
#include "directory/node_cache.h"
#include "vmm/node/coherence_wire.h"
#include "vmm/node/home_store.h"
#include "vmm/node/node_runtime.h"

namespace amalgam::vmm::node {

// One coherence message for the loop, from a peer (frame) or from this node itself (local).
struct Inbound {
  WireMessage wire;
  std::optional<fabric::ReceivedMessage> frame;
  std::vector<uint8_t> local;
  absl::Span<const uint8_t> payload() const {
    if (frame.has_value()) return frame->page();
    return absl::Span<const uint8_t>(local.data(), local.size());
  }
};

class NodeRuntime::Impl : public memory::PageFaultHandler {
 public:
  Impl(NodeRuntimeOptions options, std::unique_ptr<HomeStore> store);
  ~Impl() override { Stop(); }

  absl::Status SeedFromGuestMemory();
  absl::Status Start();
  void Stop();
  absl::Status SendOther(directory::NodeId dst, capnp::MessageBuilder& message);
  void OnFault(const memory::PageFault& fault) override;
  std::map<std::string, uint64_t> Metrics() const;
  directory::NodeId self() const { return opt_.self; }

 private:
  struct Fault {
    directory::PageNumber page;
    directory::Access access;
    int64_t read_ns;  // when the fault service read it (for NodeRuntimeOptions::trace)
  };
  struct Timer {
    int64_t deadline_ns;
    directory::PageNumber page;
  };

  // Threads.
  void ReceiveLoop();
  void EventLoop();

  // Loop-thread work (runtime_loop.cc).
  void HandleFault(const Fault& f);
  void HandleInbound(const Inbound& in);
  void ReleaseDueHolds(int64_t now_ns);
  void EvictOverCapacity();
  // Performs `actions` in order for an event about one page; `in` is the payload of the message
  // being handled (grant data, writeback data), if any.
  void Execute(const std::vector<directory::Action>& actions, absl::Span<const uint8_t> in);
  void SendProtocol(const directory::Message& m, absl::Span<const uint8_t> payload);
  void ArmHold(directory::PageNumber page);
  // Page-state bookkeeping for Metrics(), around one event on `page`.
  void Account(directory::PageNumber page, directory::NodePageState before, bool home_written);
  bool HomeWritten(directory::PageNumber page) const;
  void Count(const std::string& name, uint64_t n = 1);
  void Error(const std::string& what, const absl::Status& s);
  int64_t NowNs() const;
  void Trace(TracePoint point, directory::PageNumber page, int64_t ns) const {
    if (opt_.trace) opt_.trace(point, page, ns);
  }

  const NodeRuntimeOptions opt_;
  std::unique_ptr<HomeStore> store_;
  std::unique_ptr<memory::PageFaultService> service_;
  directory::NodeCache cache_;
  directory::HomeDirectory home_;

  // Loop-owned.
  std::deque<Inbound> local_;
  std::deque<Timer> timers_;
  absl::flat_hash_map<directory::PageNumber, int64_t> hold_deadline_;
  std::deque<directory::PageNumber> resident_order_;  // FIFO eviction order (may hold stale)
  absl::flat_hash_set<directory::PageNumber> resident_;

  absl::Mutex mu_;
  absl::CondVar cv_;
  std::deque<Fault> faults_ ABSL_GUARDED_BY(mu_);
  std::deque<Inbound> inbox_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  mutable absl::Mutex metrics_mu_;
  std::map<std::string, uint64_t> counters_ ABSL_GUARDED_BY(metrics_mu_);
  std::array<uint64_t, 6> cache_pages_ ABSL_GUARDED_BY(metrics_mu_) = {};  // per NodePageState
  uint64_t home_written_ ABSL_GUARDED_BY(metrics_mu_) = 0;
  std::atomic<int> errors_logged_{0};

  std::atomic<bool> receive_stop_{false};
  std::thread receive_thread_;
  std::thread loop_thread_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace amalgam::vmm::node

#endif  // AMALGAM_VMM_NODE_RUNTIME_IMPL_H_
