// NodeCache: fault and message handling, the userfaultfd action order, holds, and bad input
// (error, state unchanged).
#include "directory/node_cache.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "directory/protocol_testutil.h"

namespace amalgam::directory {
namespace {

using testing::Homes;
using testing::Ok;
using testing::Rejected;
using testing::Snapshot;
using testing::Types;

// A message from page's home (node page / 2 in Homes()).
Message FromHome(MessageType type, NodeId to, PageNumber page, uint64_t req) {
  return testing::MakeMessage(type, static_cast<NodeId>(page / 2), to, page, req);
}

Message Grant(NodeId to, PageNumber page, uint64_t req, PageState state, bool data,
              bool zero = false) {
  Message m = FromHome(MessageType::kPageGrant, to, page, req);
  m.state = state;
  m.has_data = data;
  m.zero_fill = zero;
  return m;
}

// Node 3 takes page 2 (home: node 1) to Shared through a read miss (req id 1).
void MakeShared(NodeCache& c) {
  std::vector<Action> out;
  REQUIRE(c.OnFault(2, Access::kRead, &out).ok());
  Ok(c, Grant(3, 2, 1, PageState::kShared, true));
  REQUIRE(c.ReleaseHold(2, &out).ok());
}

// Node 3 takes page 2 (home: node 1) to Modified through a write miss; returns the req id.
uint64_t MakeModified(NodeCache& c) {
  std::vector<Action> out;
  REQUIRE(c.OnFault(2, Access::kWrite, &out).ok());
  REQUIRE(out.size() == 1);
  uint64_t req = out[0].message.req_id;
  Ok(c, Grant(3, 2, req, PageState::kModified, true));
  REQUIRE(c.ReleaseHold(2, &out).ok());
  return req;
}

TEST_CASE("read miss: request to the home, install read-only, wake") {
  NodeCache c(3, &Homes());
  std::vector<Action> out;
  REQUIRE(c.OnFault(2, Access::kRead, &out).ok());
  REQUIRE(out.size() == 1);
  CHECK(out[0].message.type == MessageType::kPageRequest);
  CHECK(out[0].message.to == 1);
  CHECK(out[0].message.access == Access::kRead);
  CHECK(c.StateOf(2) == NodePageState::kInvalidToShared);
  // A second vCPU faulting meanwhile joins the request.
  out.clear();
  REQUIRE(c.OnFault(2, Access::kRead, &out).ok());
  CHECK(out.empty());
  out = Ok(c, Grant(3, 2, 1, PageState::kShared, false, /*zero=*/true));
  REQUIRE(out.size() == 2);
  CHECK(out[0].type == ActionType::kInstallPage);
  CHECK_FALSE(out[0].writable);  // UFFDIO_COPY with MODE_WP
  CHECK(out[0].zero_fill);
  CHECK(out[1].type == ActionType::kWakeVcpus);
  CHECK(c.StateOf(2) == NodePageState::kShared);
  CHECK(c.IsHeld(2));
}

TEST_CASE("write fault on a shared page upgrades in place") {
  NodeCache c(3, &Homes());
  MakeShared(c);
  std::vector<Action> out;
  REQUIRE(c.OnFault(2, Access::kWrite, &out).ok());
  REQUIRE(out.size() == 1);
  CHECK(out[0].message.have_copy);
  out = Ok(c, Grant(3, 2, 2, PageState::kModified, false));
  CHECK(Types(out) == std::vector<ActionType>{ActionType::kMakeWritable, ActionType::kWakeVcpus});
}

TEST_CASE("an invalidation crossing an upgrade drops the copy; the grant then brings data") {
  NodeCache c(3, &Homes());
  std::vector<Action> out;
  MakeShared(c);
  REQUIRE(c.OnFault(2, Access::kWrite, &out).ok());
  out = Ok(c, FromHome(MessageType::kInvalidate, 3, 2, 77));
  CHECK(Types(out) == std::vector<ActionType>{ActionType::kDropPage, ActionType::kSend});
  CHECK(out[1].message.type == MessageType::kInvalidateAck);
  CHECK(out[1].message.req_id == 77);
  CHECK(c.StateOf(2) == NodePageState::kInvalidToModified);
  out = Ok(c, Grant(3, 2, 2, PageState::kModified, true));
  CHECK(out[0].type == ActionType::kInstallPage);
  CHECK(out[0].writable);
}

TEST_CASE("giving a Modified page back: write-protect, copy out, drop, then send") {
  NodeCache c(3, &Homes());
  MakeModified(c);
  SECTION("hand-over") {
    Message d = FromHome(MessageType::kDowngrade, 3, 2, 9);
    d.drop = true;
    auto out = Ok(c, d);
    CHECK(Types(out) == std::vector<ActionType>{ActionType::kWriteProtect, ActionType::kCopyOut,
                                                ActionType::kDropPage, ActionType::kSend});
    CHECK(out[3].message.type == MessageType::kWriteback);
    CHECK(out[3].message.state == PageState::kInvalid);
    CHECK(out[3].message.has_data);
    CHECK(out[3].message.req_id == 9);
    CHECK(c.StateOf(2) == NodePageState::kInvalid);
  }
  SECTION("downgrade keeps the page read-only") {
    auto out = Ok(c, FromHome(MessageType::kDowngrade, 3, 2, 9));
    CHECK(Types(out) == std::vector<ActionType>{ActionType::kWriteProtect, ActionType::kCopyOut,
                                                ActionType::kSend});
    CHECK(out[2].message.state == PageState::kShared);
    CHECK(c.StateOf(2) == NodePageState::kShared);
  }
  SECTION("eviction") {
    std::vector<Action> out;
    REQUIRE(c.Evict(2, &out).ok());
    CHECK(Types(out) == std::vector<ActionType>{ActionType::kWriteProtect, ActionType::kCopyOut,
                                                ActionType::kDropPage, ActionType::kSend});
    CHECK(out[3].message.req_id == 0);
    // The home's recall that crossed the eviction is ignored.
    out.clear();
    Message d = FromHome(MessageType::kDowngrade, 3, 2, 9);
    d.drop = true;
    CHECK(Ok(c, d).empty());
    CHECK(c.stale_recalls() == 1);
  }
}

TEST_CASE("a recall arriving while the page is held waits for ReleaseHold") {
  NodeCache c(3, &Homes());
  std::vector<Action> out;
  REQUIRE(c.OnFault(2, Access::kRead, &out).ok());
  Ok(c, Grant(3, 2, 1, PageState::kShared, true));
  CHECK(Ok(c, FromHome(MessageType::kInvalidate, 3, 2, 5)).empty());
  CHECK(c.StateOf(2) == NodePageState::kShared);
  // A second recall while one is deferred is a protocol error.
  Rejected(c, FromHome(MessageType::kInvalidate, 3, 2, 6), absl::StatusCode::kFailedPrecondition);
  out.clear();
  REQUIRE(c.ReleaseHold(2, &out).ok());
  CHECK(Types(out) == std::vector<ActionType>{ActionType::kDropPage, ActionType::kSend});
  CHECK(out[1].message.req_id == 5);
  CHECK(c.StateOf(2) == NodePageState::kInvalid);
  out.clear();
  CHECK(c.ReleaseHold(2, &out).code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("bad input to a node cache is an error and leaves the state unchanged") {
  NodeCache c(3, &Homes());
  std::vector<Action> out;
  REQUIRE(c.OnFault(2, Access::kRead, &out).ok());    // page 2: IS, req 1
  REQUIRE(c.OnFault(4, Access::kWrite, &out).ok());   // page 4: IM, req 2
  REQUIRE(c.OnFault(6, Access::kWrite, &out).ok());   // page 6: IM, req 3
  Ok(c, Grant(3, 6, 3, PageState::kModified, true));  // page 6: M (held)
  REQUIRE(c.ReleaseHold(6, &out).ok());

  SECTION("grant for a page nobody asked for (stale grant)") {
    Rejected(c, Grant(3, 0, 1, PageState::kShared, true), absl::StatusCode::kFailedPrecondition);
  }
  SECTION("grant with another request's id") {
    Rejected(c, Grant(3, 2, 2, PageState::kShared, true), absl::StatusCode::kFailedPrecondition);
  }
  SECTION("duplicate grant") {
    Rejected(c, Grant(3, 6, 3, PageState::kModified, true), absl::StatusCode::kFailedPrecondition);
  }
  SECTION("grant of the wrong state") {
    Rejected(c, Grant(3, 2, 1, PageState::kModified, true), absl::StatusCode::kFailedPrecondition);
  }
  SECTION("grant for a miss without data or zero-fill") {
    Rejected(c, Grant(3, 4, 2, PageState::kModified, false), absl::StatusCode::kFailedPrecondition);
  }
  SECTION("grant with both data and zero-fill") {
    Rejected(c, Grant(3, 4, 2, PageState::kModified, true, true),
             absl::StatusCode::kFailedPrecondition);
  }
  SECTION("message from a node that is not the page's home") {
    Message m = Grant(3, 2, 1, PageState::kShared, true);
    m.from = 2;
    Rejected(c, m, absl::StatusCode::kInvalidArgument);
  }
  SECTION("message addressed to another node") {
    Rejected(c, Grant(2, 2, 1, PageState::kShared, true), absl::StatusCode::kInvalidArgument);
  }
  SECTION("unknown page") {
    Rejected(c, Grant(3, 100, 1, PageState::kShared, true), absl::StatusCode::kNotFound);
  }
  SECTION("invalidate sent to the owner") {
    Rejected(c, FromHome(MessageType::kInvalidate, 3, 6, 4), absl::StatusCode::kFailedPrecondition);
  }
  SECTION("home message sent to a cache") {
    Message m = FromHome(MessageType::kInvalidateAck, 3, 2, 1);
    Rejected(c, m, absl::StatusCode::kInvalidArgument);
  }
  SECTION("fault and eviction of unknown or non-resident pages") {
    std::string before = Snapshot(c);
    std::vector<Action> none;
    CHECK(c.OnFault(100, Access::kRead, &none).code() == absl::StatusCode::kNotFound);
    CHECK(c.Evict(0, &none).code() == absl::StatusCode::kFailedPrecondition);
    CHECK(c.Evict(2, &none).code() == absl::StatusCode::kFailedPrecondition);  // request pending
    CHECK(none.empty());
    CHECK(Snapshot(c) == before);
  }
}

TEST_CASE("downgrade of a page held only Shared is rejected") {
  NodeCache c(3, &Homes());
  MakeShared(c);
  Rejected(c, FromHome(MessageType::kDowngrade, 3, 2, 4), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace amalgam::directory
