// Test-only: a cluster of NodeCaches and HomeDirectories wired like the node runtime wires them
// (see protocol_model.h for what the model captures), as values that the checkers copy, step
// and fingerprint. Internal to protocol_model.cc. Implemented in cluster_model.cc (initial world,
// enabled steps), cluster_model_apply.cc (steps) and cluster_model_checks.cc (invariants,
// fingerprint).
//
// Thread-safety: not thread-safe. Ownership: World values own everything; the ClusterModel owns
// the HomeMap every World's caches and directories borrow, so it must outlive them.
#ifndef AMALGAM_DIRECTORY_CLUSTER_MODEL_H_
#define AMALGAM_DIRECTORY_CLUSTER_MODEL_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "directory/home_directory.h"
#include "directory/home_map.h"
#include "directory/node_cache.h"
#include "directory/protocol.h"
#include "directory/protocol_model.h"

namespace amalgam::directory::model_internal {

class RoundRobinHomes : public HomeMap {
 public:
  RoundRobinHomes(uint32_t nodes, uint32_t pages) : nodes_(nodes), pages_(pages) {}
  absl::StatusOr<NodeId> HomeOf(PageNumber page) const override {
    if (page >= pages_) return absl::NotFoundError("page outside the model");
    return static_cast<NodeId>(page % nodes_);
  }
  uint32_t num_nodes() const override { return nodes_; }

 private:
  uint32_t nodes_, pages_;
};

enum Mapping : uint8_t { kUnmapped = 0, kReadOnly = 1, kWritable = 2 };
enum class Vcpu : uint8_t { kIdle, kBlocked, kWoken, kDone };

struct Envelope {
  Message msg;
  uint32_t payload = 0;  // the page's value when msg.has_data
};

struct Fault {
  uint32_t page;
  Access access;
};

struct NodeModel {
  NodeModel(NodeId id, const HomeMap* homes, uint32_t pages, uint32_t ops, uint32_t evictions)
      : cache(id, homes),
        home(id, homes),
        mapping(pages, kUnmapped),
        local(pages, 0),
        home_copy(pages, 0),
        ops_left(ops),
        evictions_left(evictions) {}
  NodeCache cache;
  HomeDirectory home;
  // Inline storage: the exhaustive search copies the world millions of times.
  absl::InlinedVector<uint8_t, 8> mapping;
  absl::InlinedVector<uint32_t, 8> local;      // guest page content (meaningful when mapped)
  absl::InlinedVector<uint32_t, 8> home_copy;  // home's backing copy (pages homed here)
  std::vector<Action> actions;                 // the handler's current action list
  uint32_t next_action = 0;
  uint32_t payload = 0;   // of the message being handled
  uint32_t outgoing = 0;  // filled by kCopyOut for the next kWriteback
  bool copied_out = false;
  std::vector<Fault> faults;  // uffd fault messages not yet read by the handler
  Vcpu vcpu = Vcpu::kIdle;
  uint32_t op_page = 0;
  Access op_access = Access::kRead;
  uint32_t ops_left;
  uint32_t ops_done = 0;
  uint32_t evictions_left;
};

struct World {
  std::vector<NodeModel> nodes;
  std::vector<std::vector<Envelope>> channels;  // [src * n + dst], FIFO
  absl::InlinedVector<uint32_t, 8> last_write;  // ghost: value of the last completed write
};

enum class StepKind : uint8_t {
  kRunAction,
  kHandleFault,
  kDeliver,
  kEvict,
  kReleaseHold,
  kAccess,
  kRetry
};
struct Step {
  StepKind kind;
  uint8_t node;  // acting node (kDeliver: destination)
  uint8_t a;     // kDeliver: source; kEvict/kAccess: page
  uint8_t b;     // kAccess: access
};

class ClusterModel {
 public:
  explicit ClusterModel(const ModelConfig& c) : c_(c), homes_(c.nodes, c.pages) {}
  World Initial() const;
  void Enabled(const World& w, std::vector<Step>* steps) const;
  static bool Invisible(const NodeModel& nm, const Action& a);
  // Applies `s`; returns a violation ("" if none). Appends a description when `what` is set.
  std::string Apply(World& w, const Step& s, std::string* what, uint64_t* reads) const;
  // Invariants that must hold in every state. Returns a violation or "".
  std::string CheckState(const World& w) const;
  // No step is enabled: everything must be finished and consistent, else it is a deadlock.
  std::string CheckTerminal(const World& w) const;
  // 128-bit fingerprint of the canonical encoding.
  std::pair<uint64_t, uint64_t> Fingerprint(const World& w, std::string* buf) const;
  std::string Describe(const World& w, const Step& s) const;

 private:
  static void EncodeMessage(const Message& m, std::string* buf);
  static void EncodeAction(const Action& a, std::string* buf);
  std::string Handle(NodeModel& nm, const absl::Status& st, uint32_t payload, std::string desc,
                     std::string* what) const;
  std::string Access_(World& w, uint32_t n, std::string* what, uint64_t* reads,
                      const char* suffix) const;
  std::string RunAction(World& w, uint32_t n, std::string* what) const;
  ModelConfig c_;
  RoundRobinHomes homes_;
};

}  // namespace amalgam::directory::model_internal

#endif  // AMALGAM_DIRECTORY_CLUSTER_MODEL_H_
