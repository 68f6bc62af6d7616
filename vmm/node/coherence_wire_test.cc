// The directory <-> fabric message translation: every type round-trips; inconsistent input is an
// error naming the problem.
#include "vmm/node/coherence_wire.h"

#include <capnp/message.h>

#include <catch2/catch.hpp>

namespace amalgam::vmm::node {
namespace {

using directory::Access;
using directory::Message;
using directory::MessageType;
using directory::PageState;
namespace schema = fabric::schema;

absl::StatusOr<WireMessage> RoundTrip(const Message& m, size_t payload) {
  capnp::MallocMessageBuilder b;
  BuildWire(m, &b);
  auto reader = b.getRoot<schema::Message>().asReader();
  REQUIRE(IsCoherence(reader.which()));
  return ParseWire(reader, m.from, m.to, payload);
}

Message Make(MessageType t) {
  Message m;
  m.type = t;
  m.from = 1;
  m.to = 2;
  m.page = 0x12345;
  m.req_id = 77;
  return m;
}

TEST_CASE("every protocol message survives the round trip") {
  std::vector<std::pair<Message, size_t>> cases;
  Message req = Make(MessageType::kPageRequest);
  req.access = Access::kWrite;
  req.requester = 1;
  req.have_copy = true;
  cases.push_back({req, 0});
  Message grant = Make(MessageType::kPageGrant);
  grant.state = PageState::kModified;
  grant.has_data = true;
  cases.push_back({grant, 4096});
  Message zero = Make(MessageType::kPageGrant);
  zero.state = PageState::kShared;
  zero.zero_fill = true;
  cases.push_back({zero, 0});
  Message inv = Make(MessageType::kInvalidate);
  inv.requester = 3;
  cases.push_back({inv, 0});
  cases.push_back({Make(MessageType::kInvalidateAck), 0});
  Message down = Make(MessageType::kDowngrade);
  down.drop = true;
  cases.push_back({down, 0});
  Message wb = Make(MessageType::kWriteback);
  wb.state = PageState::kShared;
  wb.has_data = true;
  cases.push_back({wb, 4096});
  for (const auto& [m, payload] : cases) {
    INFO(directory::ToString(m));
    absl::StatusOr<WireMessage> w = RoundTrip(m, payload);
    REQUIRE(w.ok());
    CHECK_FALSE(w->seed);
    CHECK(w->message == m);
  }
}

TEST_CASE("the seed is a clean writeback and parses as a seed") {
  capnp::MallocMessageBuilder b;
  BuildSeed(99, &b);
  absl::StatusOr<WireMessage> w = ParseWire(b.getRoot<schema::Message>().asReader(), 0, 1, 4096);
  REQUIRE(w.ok());
  CHECK(w->seed);
  CHECK(w->message.page == 99);
  CHECK(std::string(WireTypeName(*w)) == "Seed");
  // Without its page it is refused.
  CHECK_FALSE(ParseWire(b.getRoot<schema::Message>().asReader(), 0, 1, 0).ok());
}

TEST_CASE("inconsistent messages are refused") {
  Message grant = Make(MessageType::kPageGrant);
  grant.state = PageState::kShared;
  grant.has_data = true;
  CHECK(RoundTrip(grant, 0).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_FALSE(RoundTrip(grant, 100).ok());
  Message req = Make(MessageType::kPageRequest);
  CHECK_FALSE(RoundTrip(req, 4096).ok());  // a request carries no page

  capnp::MallocMessageBuilder b;
  auto inv = b.initRoot<schema::Message>().initInvalidate();
  inv.setAckTo(5);  // acks must go to the sender (the home)
  CHECK_FALSE(ParseWire(b.getRoot<schema::Message>().asReader(), 1, 2, 0).ok());

  capnp::MallocMessageBuilder c;
  auto ack = c.initRoot<schema::Message>().initInvalidateAck();
  ack.setFrom(4);  // not the frame's sender
  CHECK_FALSE(ParseWire(c.getRoot<schema::Message>().asReader(), 1, 2, 0).ok());

  capnp::MallocMessageBuilder d;
  auto wb = d.initRoot<schema::Message>().initWriteback();
  wb.setDirty(false);
  wb.setReqId(3);  // a seed never answers a request
  wb.setHasData(true);
  CHECK_FALSE(ParseWire(d.getRoot<schema::Message>().asReader(), 1, 2, 4096).ok());

  capnp::MallocMessageBuilder e;
  e.initRoot<schema::Message>().initHeartbeat();
  CHECK_FALSE(IsCoherence(e.getRoot<schema::Message>().asReader().which()));
  CHECK_FALSE(ParseWire(e.getRoot<schema::Message>().asReader(), 1, 2, 0).ok());
}

}  // namespace
}  // namespace amalgam::vmm::node
