// NodeRuntime: one node of a distributed guest. Joins the userfaultfd page-fault service
// (memory/), the coherence state machines (directory/: a NodeCache for the pages this node maps,
// a HomeDirectory for the pages it is home for) and the fabric (a fabric::Transport). One event
// loop thread owns the NodeCache and the HomeDirectory and is the only one to touch them; it
// takes faults (queued by the fault service thread), coherence messages (queued by the receive
// thread, the transport's only Receive consumer), hold-release timers and evictions, and performs
// the resulting actions in order (directory/README.md, "Actions -> userfaultfd").
//
// A node stores the pages it is home for in its own RAM contribution (an anonymous mapping sized
// to its share); never-written pages are granted as zero-fill, without payload.
//
// Thread-safety: every public method is thread-safe. OnFault is called by the fault service.
// Ownership: owns its threads, the home store and the fault service; borrows the HomeMap, the
// Transport and the GuestMemory, which must outlive it. Stop() (also the destructor) joins the
// threads and releases the uffd; stop the vCPUs first.
#ifndef AMALGAM_VMM_NODE_NODE_RUNTIME_H_
#define AMALGAM_VMM_NODE_NODE_RUNTIME_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "directory/home_map.h"
#include "directory/protocol.h"
#include "fabric/message.h"
#include "fabric/transport.h"
#include "memory/guest_memory.h"
#include "memory/page_fault_service.h"

namespace amalgam::vmm::node {

// Steps of a fault's service that NodeRuntimeOptions::trace reports (benchmarks, bench/node).
enum class TracePoint {
  kFaultRead,    // the fault service read the fault from the uffd (time taken by that thread)
  kFaultLoop,    // the loop starts on the fault (directory, then request or install)
  kInboundLoop,  // the loop starts on a received coherence message (e.g. a grant)
  kResolved,     // an install or upgrade for the page returned (faulting threads woken)
};

struct NodeRuntimeOptions {
  directory::NodeId self = 0;
  const directory::StaticPartitionHomeMap* homes = nullptr;  // required; borrowed
  fabric::Transport* transport = nullptr;  // required; borrowed; only this runtime receives
  // Guest RAM mapped on this node (faults are served for all of it). Null: a memory-only node,
  // which serves its home range and takes no faults.
  memory::GuestMemory* memory = nullptr;
  // Pages this node may hold resident (Shared or Modified) before it evicts the oldest to their
  // homes. 0: unlimited.
  uint64_t local_capacity_pages = 0;
  // How long a page stays held after a grant is applied (NodeCache::ReleaseHold): long enough
  // for the woken vCPU to redo its access, short enough not to stall a recall.
  absl::Duration hold_time = absl::Microseconds(200);
  // Every received message that is not a coherence message (Heartbeat, Join, Leave, Ping, ...)
  // goes here, on the receive thread (e.g. a liveness monitor). Null: counted and dropped.
  std::function<void(fabric::ReceivedMessage)> on_other_message;
  // Benchmarks only (owned by bench/node): called on the loop thread with the CLOCK_MONOTONIC
  // time of each step of a page's fault service. Null (the default) costs one branch per step.
  std::function<void(TracePoint point, directory::PageNumber page, int64_t ns)> trace;
};

class NodeRuntime : public memory::PageFaultHandler {
 public:
  // Checks the options and maps the home store (this node's share of the HomeMap's pages).
  // No thread runs yet.
  static absl::StatusOr<std::unique_ptr<NodeRuntime>> Create(NodeRuntimeOptions options);
  ~NodeRuntime() override;
  NodeRuntime(const NodeRuntime&) = delete;
  NodeRuntime& operator=(const NodeRuntime&) = delete;

  // Boot node, before Start(): every page of `memory` the loader wrote becomes its home's data
  // (local homes: copied into the home store; remote homes: a seed message, which per-peer FIFO
  // delivers before any request from this node), then all guest RAM is dropped locally so every
  // page starts Invalid. FAILED_PRECONDITION after Start() or without memory.
  absl::Status SeedFromGuestMemory();

  // Starts the receive thread and the loop; with memory, registers all guest RAM with
  // userfaultfd (MISSING|WP) and starts the fault service.
  absl::Status Start();
  // Idempotent. Stops the fault service (blocked threads are released, see PageFaultService),
  // the loop and the receive thread. Does not close the transport.
  void Stop();

  // Sends `message` (a schema::Message root) to `dst` from this node, counted in Metrics().
  // For non-coherence traffic (e.g. Leave) by the cluster glue; thread-safe.
  absl::Status SendOther(directory::NodeId dst, capnp::MessageBuilder& message);

  // memory::PageFaultHandler: queues the fault for the loop.
  void OnFault(const memory::PageFault& fault) override;

  // Counters (see README.md): pages per NodeCache state ("cache_pages_S", ...), home pages
  // ("home_pages", "home_pages_written"), faults by where their home is ("faults_local_home",
  // "faults_remote_home"), messages and bytes sent/received per type ("sent_msgs_PageGrant",
  // "recv_bytes_Writeback", ...), evictions, holds, errors, and the fault service's counters and
  // latency histogram prefixed "uffd_".
  std::map<std::string, uint64_t> Metrics() const;

  directory::NodeId self() const;

  class Impl;

 private:
  explicit NodeRuntime(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// "name value" lines, one per metric, sorted by name (for --metrics-out and logs).
std::string FormatMetrics(const std::map<std::string, uint64_t>& metrics);

}  // namespace amalgam::vmm::node

#endif  // AMALGAM_VMM_NODE_NODE_RUNTIME_H_
