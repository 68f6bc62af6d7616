// Test scaffolding shared by the NodeCache and HomeDirectory tests: a fixed home map, message
// builders, and feeding a message to either state machine with the checks every test repeats.
// Thread-safety: the home map is immutable; the helpers touch only what they are given.
#ifndef AMALGAM_DIRECTORY_PROTOCOL_TESTUTIL_H_
#define AMALGAM_DIRECTORY_PROTOCOL_TESTUTIL_H_

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "directory/home_map.h"
#include "directory/protocol.h"

namespace amalgam::directory::testing {

// 4 nodes, 8 pages: pages 0-1 at node 0, 2-3 at node 1, ... (so page p's home is p / 2).
inline const StaticPartitionHomeMap& Homes() {
  static const StaticPartitionHomeMap* homes =
      new StaticPartitionHomeMap(*StaticPartitionHomeMap::Even(8, 4));
  return *homes;
}

// A message of `type` about `page` from `from` to `to`; tests set the type-specific fields.
inline Message MakeMessage(MessageType type, NodeId from, NodeId to, PageNumber page,
                           uint64_t req) {
  Message m;
  m.type = type;
  m.from = from;
  m.to = to;
  m.page = page;
  m.req_id = req;
  return m;
}

inline std::vector<ActionType> Types(const std::vector<Action>& out) {
  std::vector<ActionType> t;
  for (const Action& a : out) t.push_back(a.type);
  return t;
}

// The machine's canonical state encoding (NodeCache or HomeDirectory).
template <typename Machine>
std::string Snapshot(const Machine& m) {
  std::string s;
  m.EncodeState(&s);
  return s;
}

// Feeds `msg`; requires success; returns the actions.
template <typename Machine>
std::vector<Action> Ok(Machine& m, const Message& msg) {
  std::vector<Action> out;
  absl::Status s = m.OnMessage(msg, &out);
  INFO(s.ToString());
  REQUIRE(s.ok());
  return out;
}

// Feeds `msg`; requires an error with `code` and a message, no actions and an unchanged state.
template <typename Machine>
void Rejected(Machine& m, const Message& msg, absl::StatusCode code) {
  std::string before = Snapshot(m);
  std::vector<Action> out;
  absl::Status s = m.OnMessage(msg, &out);
  INFO(ToString(msg) << " -> " << s.ToString());
  CHECK(s.code() == code);
  CHECK_FALSE(s.message().empty());
  CHECK(out.empty());
  CHECK(Snapshot(m) == before);
}

}  // namespace amalgam::directory::testing

#endif  // AMALGAM_DIRECTORY_PROTOCOL_TESTUTIL_H_
