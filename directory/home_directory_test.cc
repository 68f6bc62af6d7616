// HomeDirectory: transitions on small scripted scenarios, and bad input (error, state unchanged).
#include "directory/home_directory.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "directory/protocol_testutil.h"

namespace amalgam::directory {
namespace {

using testing::Homes;
using testing::Ok;
using testing::Rejected;

// Messages to the home of the pages the tests use (node 0: pages 0 and 1).
Message Request(NodeId from, PageNumber page, Access access, uint64_t req, bool have_copy = false) {
  Message m = testing::MakeMessage(MessageType::kPageRequest, from, 0, page, req);
  m.requester = from;
  m.access = access;
  m.have_copy = have_copy;
  return m;
}

Message Ack(NodeId from, PageNumber page, uint64_t req) {
  return testing::MakeMessage(MessageType::kInvalidateAck, from, 0, page, req);
}

Message Writeback(NodeId from, PageNumber page, uint64_t req, PageState keeps) {
  Message m = testing::MakeMessage(MessageType::kWriteback, from, 0, page, req);
  m.state = keeps;
  m.has_data = true;
  return m;
}

TEST_CASE("read miss on a never-written page is a zero-fill grant without payload") {
  HomeDirectory d(0, &Homes());
  auto out = Ok(d, Request(2, 1, Access::kRead, 7));
  REQUIRE(out.size() == 1);
  const Message& g = out[0].message;
  CHECK(g.type == MessageType::kPageGrant);
  CHECK(g.to == 2);
  CHECK(g.req_id == 7);
  CHECK(g.state == PageState::kShared);
  CHECK(g.zero_fill);
  CHECK_FALSE(g.has_data);
  CHECK(d.Lookup(1).state == PageState::kShared);
  CHECK(d.Lookup(1).sharers == 0b100);
}

TEST_CASE("write to a shared page invalidates the other sharers, then grants without data") {
  HomeDirectory d(0, &Homes());
  Ok(d, Request(1, 0, Access::kRead, 1));
  Ok(d, Request(2, 0, Access::kRead, 1));
  auto out = Ok(d, Request(1, 0, Access::kWrite, 2, /*have_copy=*/true));
  REQUIRE(out.size() == 1);
  CHECK(out[0].message.type == MessageType::kInvalidate);
  CHECK(out[0].message.to == 2);
  CHECK(d.Lookup(0).busy);
  // A request arriving meanwhile waits behind the transaction.
  CHECK(Ok(d, Request(3, 0, Access::kRead, 5)).empty());
  CHECK(d.Lookup(0).queued == 1);
  out = Ok(d, Ack(2, 0, 2));
  // Grant M to node 1 (upgrade in place: no data), then serve node 3: recall from node 1.
  REQUIRE(out.size() == 2);
  CHECK(out[0].message.type == MessageType::kPageGrant);
  CHECK(out[0].message.state == PageState::kModified);
  CHECK_FALSE(out[0].message.has_data);
  CHECK_FALSE(out[0].message.zero_fill);
  CHECK(out[1].message.type == MessageType::kDowngrade);
  CHECK(out[1].message.to == 1);
  CHECK_FALSE(out[1].message.drop);
  // The owner's writeback completes the read: both become sharers, the home keeps the data.
  out = Ok(d, Writeback(1, 0, 5, PageState::kShared));
  REQUIRE(out.size() == 2);
  CHECK(out[0].type == ActionType::kStoreHomeCopy);
  CHECK(out[1].message.type == MessageType::kPageGrant);
  CHECK(out[1].message.to == 3);
  CHECK(out[1].message.has_data);
  CHECK(d.Lookup(0).state == PageState::kShared);
  CHECK(d.Lookup(0).sharers == 0b1010);
  CHECK(d.Lookup(0).written);
}

TEST_CASE("an eviction writeback that crosses a hand-over answers it") {
  HomeDirectory d(0, &Homes());
  Ok(d, Request(1, 0, Access::kWrite, 1));
  auto out = Ok(d, Request(2, 0, Access::kWrite, 1));
  REQUIRE(out.size() == 1);
  CHECK(out[0].message.type == MessageType::kDowngrade);
  CHECK(out[0].message.drop);
  out = Ok(d, Writeback(1, 0, /*req=*/0, PageState::kInvalid));  // node 1 evicted meanwhile
  REQUIRE(out.size() == 2);
  CHECK(out[1].message.to == 2);
  CHECK(out[1].message.state == PageState::kModified);
  CHECK(out[1].message.has_data);
  CHECK(d.Lookup(0).owner == 2);
}

TEST_CASE("bad input to the home is an error and leaves the state unchanged") {
  HomeDirectory d(0, &Homes());
  Ok(d, Request(1, 0, Access::kRead, 1));
  Ok(d, Request(2, 0, Access::kRead, 1));
  Ok(d, Request(3, 0, Access::kWrite, 4));  // invalidates 1 and 2
  Ok(d, Ack(1, 0, 4));

  SECTION("duplicate ack") { Rejected(d, Ack(1, 0, 4), absl::StatusCode::kFailedPrecondition); }
  SECTION("ack from a node that is not a sharer") {
    Rejected(d, Ack(3, 0, 4), absl::StatusCode::kFailedPrecondition);
  }
  SECTION("ack for another transaction") {
    Rejected(d, Ack(2, 0, 9), absl::StatusCode::kFailedPrecondition);
  }
  SECTION("ack for a page with no transaction") {
    Rejected(d, Ack(2, 1, 4), absl::StatusCode::kFailedPrecondition);
  }
  SECTION("writeback from a node that does not own the page") {
    Rejected(d, Writeback(2, 0, 0, PageState::kInvalid), absl::StatusCode::kFailedPrecondition);
  }
  SECTION("duplicate request") {
    Rejected(d, Request(3, 0, Access::kWrite, 4), absl::StatusCode::kFailedPrecondition);
  }
  SECTION("unknown page") {
    Rejected(d, Request(1, 100, Access::kRead, 2), absl::StatusCode::kNotFound);
  }
  SECTION("page homed at another node") {
    Rejected(d, Request(1, 2, Access::kRead, 2), absl::StatusCode::kInvalidArgument);
  }
  SECTION("sender outside the cluster") {
    Rejected(d, Request(9, 0, Access::kRead, 2), absl::StatusCode::kInvalidArgument);
  }
  SECTION("message for another node") {
    Message m = Request(1, 0, Access::kRead, 2);
    m.to = 1;
    Rejected(d, m, absl::StatusCode::kInvalidArgument);
  }
  SECTION("read request claiming a copy") {
    Rejected(d, Request(1, 0, Access::kRead, 2, true), absl::StatusCode::kInvalidArgument);
  }
  SECTION("node-cache message sent to the home") {
    Message m = Request(1, 0, Access::kRead, 2);
    m.type = MessageType::kPageGrant;
    Rejected(d, m, absl::StatusCode::kInvalidArgument);
  }
}

TEST_CASE("bad writebacks and requests against an owned page") {
  HomeDirectory d(0, &Homes());
  Ok(d, Request(1, 0, Access::kWrite, 1));
  SECTION("owner requesting its own page") {
    Rejected(d, Request(1, 0, Access::kRead, 2), absl::StatusCode::kFailedPrecondition);
  }
  SECTION("writeback without data") {
    Message m = Writeback(1, 0, 0, PageState::kInvalid);
    m.has_data = false;
    Rejected(d, m, absl::StatusCode::kFailedPrecondition);
  }
  SECTION("writeback answering a recall that was never sent") {
    Rejected(d, Writeback(1, 0, 3, PageState::kShared), absl::StatusCode::kFailedPrecondition);
  }
  SECTION("reply that keeps Shared after a hand-over was asked") {
    Ok(d, Request(2, 0, Access::kWrite, 6));
    Rejected(d, Writeback(1, 0, 6, PageState::kShared), absl::StatusCode::kFailedPrecondition);
  }
}

TEST_CASE("a seeded page is granted with data; seeding is only for idle pages homed here") {
  HomeDirectory d(0, &Homes());
  REQUIRE(d.Seed(1).ok());
  REQUIRE(d.Seed(1).ok());  // idempotent
  CHECK(d.Lookup(1).written);
  CHECK(d.Lookup(1).state == PageState::kInvalid);
  auto out = Ok(d, Request(2, 1, Access::kRead, 3));
  REQUIRE(out.size() == 1);
  CHECK(out[0].message.has_data);
  CHECK_FALSE(out[0].message.zero_fill);
  // In use now: refused, state unchanged.
  std::string before;
  d.EncodeState(&before);
  CHECK(d.Seed(1).code() == absl::StatusCode::kFailedPrecondition);
  std::string after;
  d.EncodeState(&after);
  CHECK(before == after);
  // Not homed here / outside guest RAM.
  CHECK_FALSE(d.Seed(2).ok());
  CHECK_FALSE(d.Seed(1u << 30).ok());
}

}  // namespace
}  // namespace amalgam::directory
