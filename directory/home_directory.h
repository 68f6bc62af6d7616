// HomeDirectory: the home side of the coherence protocol for the pages homed at one node. Per
// page it keeps the stable state (Uncached, Shared by a set of nodes, Modified by one owner),
// whether the home's backing copy holds data (else the page is still all zeros), and at most
// one transaction in flight; further requests for that page queue here, so requests for one
// page are serialized at its home.
//
// Thread-safety: not thread-safe; one owner (the node's message loop) calls it.
// Ownership: borrows `homes`, which must outlive the directory.
#ifndef AMALGAM_DIRECTORY_HOME_DIRECTORY_H_
#define AMALGAM_DIRECTORY_HOME_DIRECTORY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "directory/home_map.h"
#include "directory/protocol.h"

namespace amalgam::directory {

class HomeDirectory {
 public:
  HomeDirectory(NodeId self, const HomeMap* homes) : self_(self), homes_(homes) {}

  // A message for the home: kPageRequest, kInvalidateAck or kWriteback. Appends the actions
  // to perform, in order. Invalid input (unknown page, a page homed elsewhere, an ack nobody
  // waits for, a writeback from a node that does not own the page, a duplicate request)
  // returns an error and changes nothing.
  absl::Status OnMessage(const Message& m, std::vector<Action>* out);

  // Boot: the home copy of `page` now holds data the loader wrote (the runtime stored it), so
  // later grants carry it instead of zero-fill. Only for an idle, Uncached page homed here
  // (before any node requested it); FAILED_PRECONDITION otherwise, INVALID_ARGUMENT for a page
  // homed elsewhere. Idempotent.
  absl::Status Seed(PageNumber page);

  // What the directory believes about one page (for placement, metrics and checks).
  struct PageView {
    PageState state = PageState::kInvalid;  // kInvalid: no node holds a copy (Uncached)
    NodeId owner = kNoNode;                 // kModified only
    uint64_t sharers = 0;                   // kShared: bit n set = node n may hold a copy
    bool written = false;                   // the home copy holds data (else zero-fill)
    bool busy = false;                      // a transaction is in flight
    size_t queued = 0;                      // requests waiting behind it
  };
  PageView Lookup(PageNumber page) const;
  NodeId self() const { return self_; }

  // Appends a canonical encoding of the whole protocol state (checkers, snapshot comparisons).
  void EncodeState(std::string* out) const;

 private:
  enum class Wait : uint8_t { kNone, kAcks, kWriteback };
  struct Txn {
    Wait wait = Wait::kNone;
    NodeId requester = kNoNode;
    uint64_t req_id = 0;
    Access access = Access::kRead;
    bool have_copy = false;
    bool drop = false;          // kWriteback: a hand-over was asked for
    uint64_t pending_acks = 0;  // kAcks
  };
  struct Entry {
    PageState state = PageState::kInvalid;
    NodeId owner = kNoNode;
    uint64_t sharers = 0;
    bool written = false;
    Txn txn;
    std::vector<Message> queue;  // requests waiting for txn; at most one per node
  };

  absl::Status CheckRequest(const Message& m, const Entry& e) const;
  void Process(const Message& req, Entry* e, std::vector<Action>* out);
  void Grant(Entry* e, PageNumber page, NodeId to, uint64_t req_id, PageState state,
             bool data_needed, std::vector<Action>* out);
  void Drain(PageNumber page, Entry* e, std::vector<Action>* out);
  void Release(PageNumber page, const Entry& e);

  NodeId self_;
  const HomeMap* homes_;
  absl::flat_hash_map<PageNumber, Entry> entries_;  // absent: Uncached, never written, idle
};

}  // namespace amalgam::directory

#endif  // AMALGAM_DIRECTORY_HOME_DIRECTORY_H_
