// NodeCache: the node side of the coherence protocol. For every guest page it tracks whether
// this node holds it Invalid, Shared (mapped read-only) or Modified (mapped writable), or is
// waiting for the home to answer a request. Faults, evictions and messages from homes go in;
// actions (messages to send, userfaultfd operations, vCPU wake-ups) come out, in the order the
// runtime must perform them.
//
// Thread-safety: not thread-safe; one owner (the node's fault/message loop) calls it.
// Ownership: borrows `homes`, which must outlive the cache.
#ifndef AMALGAM_DIRECTORY_NODE_CACHE_H_
#define AMALGAM_DIRECTORY_NODE_CACHE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "directory/home_map.h"
#include "directory/protocol.h"

namespace amalgam::directory {

// A page's state on one node, including the transient states of an outstanding request.
enum class NodePageState : uint8_t {
  kInvalid,
  kShared,
  kModified,
  kInvalidToShared,    // read miss sent, waiting for a Shared grant
  kInvalidToModified,  // write miss sent, waiting for a Modified grant with data
  kSharedToModified,   // upgrade sent (still readable), waiting for a Modified grant
};
const char* ToString(NodePageState s);

class NodeCache {
 public:
  NodeCache(NodeId self, const HomeMap* homes) : self_(self), homes_(homes) {}

  // A vCPU on this node faulted on `page`: a MISSING fault (access on an unmapped page) or a
  // write-protect fault (write on a read-only page). Appends what to do to `out`; a fault that
  // joins an outstanding request appends nothing (the vCPU waits for that request's wake-up).
  absl::Status OnFault(PageNumber page, Access access, std::vector<Action>* out);

  // The node wants `page` back (memory pressure, migration). Shared pages are dropped silently;
  // Modified pages are protected, written back to the home, then dropped. FAILED_PRECONDITION
  // when the page is not resident or a request for it is outstanding.
  absl::Status Evict(PageNumber page, std::vector<Action>* out);

  // A message from a home (kPageGrant, kInvalidate, kDowngrade). Invalid input (wrong
  // recipient, not from the page's home, a grant nobody asked for, a recall of a Shared page)
  // returns an error and changes nothing. A recall that crossed this node's eviction is
  // legitimate and ignored (counted in stale_recalls()).
  //
  // Forward progress: a page installed by a grant is HELD until ReleaseHold(page). A recall
  // (kInvalidate, kDowngrade) that arrives meanwhile is validated, then deferred: without the
  // hold, two nodes can take a page from each other forever before either vCPU gets to retry
  // its access (the exhaustive checker finds that livelock). The runtime arms a short timer
  // (long enough for the woken vCPU to re-execute the access) on every grant it applies.
  absl::Status OnMessage(const Message& m, std::vector<Action>* out);

  // The hold on `page` expired: performs a deferred recall, if any. FAILED_PRECONDITION when
  // the page is not held.
  absl::Status ReleaseHold(PageNumber page, std::vector<Action>* out);
  bool IsHeld(PageNumber page) const;

  NodePageState StateOf(PageNumber page) const;
  NodeId self() const { return self_; }
  uint64_t stale_recalls() const { return stale_recalls_; }

  // Appends a canonical encoding of the whole protocol state (checkers, snapshot comparisons).
  void EncodeState(std::string* out) const;

 private:
  struct Entry {
    NodePageState state = NodePageState::kInvalid;
    uint64_t req_id = 0;  // of the outstanding request, in the transient states
    bool held = false;    // granted, ReleaseHold not yet called
    bool has_deferred = false;
    Message deferred;  // a recall that arrived while held
  };
  absl::Status CheckFromHome(const Message& m, NodeId* home) const;
  absl::Status CheckRecall(const Message& m, const Entry& e) const;
  void Recall(const Message& m, NodeId home, Entry e, std::vector<Action>* out);
  absl::Status OnGrant(const Message& m, Entry* e, std::vector<Action>* out);
  void Set(PageNumber page, Entry e);

  NodeId self_;
  const HomeMap* homes_;
  absl::flat_hash_map<PageNumber, Entry> pages_;  // absent: kInvalid
  uint64_t next_req_id_ = 1;
  uint64_t stale_recalls_ = 0;
};

}  // namespace amalgam::directory

#endif  // AMALGAM_DIRECTORY_NODE_CACHE_H_
