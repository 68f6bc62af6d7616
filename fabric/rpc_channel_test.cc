// RpcChannel over the in-process transport and over real TCP sockets: page requests answered
// with page payloads, error replies, missing handlers, timeouts with late replies counted.
#include "fabric/rpc_channel.h"

#include <catch2/catch.hpp>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "fabric/inprocess_transport.h"
#include "fabric/tcp_transport.h"
#include "fabric/test_pages.h"

namespace amalgam::fabric {
namespace {

// Node 1 serves pages: even pages with data, odd pages as zero-fill grants (no payload),
// pages >= 1000 do not exist.
void ServePages(RpcChannel& server) {
  server.Handle(schema::Message::PAGE_REQUEST,
                [](const ReceivedMessage& request) -> absl::StatusOr<RpcReply> {
                  uint64_t page = request.message().getPageRequest().getPage();
                  if (page >= 1000) {
                    return absl::NotFoundError(absl::StrCat("page ", page, " is not guest RAM"));
                  }
                  RpcReply reply;
                  reply.message = std::make_unique<capnp::MallocMessageBuilder>();
                  auto g = reply.message->initRoot<schema::Message>().initPageGrant();
                  g.setPage(page);
                  g.setReqId(request.message().getPageRequest().getReqId());
                  g.setState(schema::PageState::SHARED);
                  if (page % 2 == 0) {
                    g.setHasData(true);
                    reply.page = testing::PagePattern(page);
                  } else {
                    g.setZeroFill(true);
                  }
                  return reply;
                });
}

absl::StatusOr<ReceivedMessage> RequestPage(RpcChannel& client, uint64_t page,
                                            absl::Duration timeout = absl::Seconds(20)) {
  capnp::MallocMessageBuilder b;
  auto r = b.initRoot<schema::Message>().initPageRequest();
  r.setPage(page);
  r.setAccess(schema::PageAccess::READ);
  r.setRequester(0);
  r.setReqId(page * 10);
  return client.Call(1, b, timeout);
}

// Returns a description of what is wrong with the reply, or "" (usable off the main thread,
// where Catch2 assertions are not allowed).
std::string GrantProblem(const absl::StatusOr<ReceivedMessage>& m, uint64_t page) {
  if (!m.ok()) return m.status().ToString();
  if (m->type() != schema::Message::PAGE_GRANT) return "not a PageGrant";
  auto g = m->message().getPageGrant();
  if (g.getPage() != page || g.getReqId() != page * 10) return "wrong page or reqId";
  if (page % 2 == 0) {
    if (!g.getHasData() || !testing::PageMatches(page, m->page())) return "page data wrong";
  } else {
    if (!g.getZeroFill() || !m->page().empty()) return "zero-fill grant wrong";
  }
  return "";
}

void CheckGrant(const absl::StatusOr<ReceivedMessage>& m, uint64_t page) {
  INFO("page " << page);
  REQUIRE(GrantProblem(m, page) == "");
}

}  // namespace

TEST_CASE("page requests over the in-process transport") {
  InProcessHub hub(FrameKey::Generate());
  auto t0 = hub.Connect(0), t1 = hub.Connect(1);
  REQUIRE(t0.ok());
  REQUIRE(t1.ok());
  CHECK(hub.Connect(1).status().code() == absl::StatusCode::kAlreadyExists);
  RpcChannel client(t0->get()), server(t1->get());
  ServePages(server);
  for (uint64_t p = 0; p < 200; ++p) CheckGrant(RequestPage(client, p), p);

  SECTION("handler errors come back as the caller's status") {
    auto m = RequestPage(client, 5000);
    CHECK(m.status().code() == absl::StatusCode::kNotFound);
    CHECK(m.status().message().find("not guest RAM") != absl::string_view::npos);
  }
  SECTION("a request type without a handler is UNIMPLEMENTED") {
    capnp::MallocMessageBuilder b;
    b.initRoot<schema::Message>().initHeartbeat().setNodeId(0);
    CHECK(client.Call(1, b, absl::Seconds(20)).status().code() == absl::StatusCode::kUnimplemented);
    CHECK(server.drops().Get(DropReason::kUnhandled) == 1);
  }
  SECTION("one-way messages reach the one-way handler") {
    absl::Mutex mu;
    std::vector<uint64_t> got;
    server.SetOneWayHandler([&](ReceivedMessage m) {
      absl::MutexLock lock(&mu);
      got.push_back(m.message().getInvalidate().getPage());
    });
    for (uint64_t p = 0; p < 50; ++p) {
      capnp::MallocMessageBuilder b;
      b.initRoot<schema::Message>().initInvalidate().setPage(p);
      REQUIRE((*t0)->Send(1, b).ok());
    }
    absl::MutexLock lock(&mu);
    auto all = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return got.size() == 50; };
    REQUIRE(mu.AwaitWithTimeout(absl::Condition(&all), absl::Seconds(20)));
    for (uint64_t p = 0; p < 50; ++p) CHECK(got[p] == p);  // per-peer order
  }
  SECTION("unknown destination") {
    capnp::MallocMessageBuilder b;
    b.initRoot<schema::Message>().initPing();
    CHECK(client.Call(7, b, absl::Seconds(1)).status().code() == absl::StatusCode::kNotFound);
  }
}

TEST_CASE("a call that times out returns DEADLINE_EXCEEDED; its late reply is counted") {
  InProcessHub hub(FrameKey::Generate());
  auto t0 = hub.Connect(0), t1 = hub.Connect(1);
  REQUIRE(t0.ok());
  REQUIRE(t1.ok());
  RpcChannel client(t0->get()), server(t1->get());
  absl::Notification release;
  server.Handle(schema::Message::PING, [&](const ReceivedMessage& m) -> absl::StatusOr<RpcReply> {
    release.WaitForNotification();
    RpcReply reply;
    reply.message = std::make_unique<capnp::MallocMessageBuilder>();
    reply.message->initRoot<schema::Message>().initPong();
    return reply;
  });
  capnp::MallocMessageBuilder b;
  b.initRoot<schema::Message>().initPing();
  CHECK(client.Call(1, b, absl::Milliseconds(50)).status().code() ==
        absl::StatusCode::kDeadlineExceeded);
  release.Notify();
  bool counted = false;
  for (int i = 0; i < 2000 && !counted; ++i) {
    counted = client.drops().Get(DropReason::kLateReply) == 1;
    if (!counted) absl::SleepFor(absl::Milliseconds(10));
  }
  CHECK(counted);
  // The channel still works afterwards.
  auto ok = client.Call(1, b, absl::Seconds(20));
  REQUIRE(ok.ok());
  CHECK(ok->type() == schema::Message::PONG);
}

TEST_CASE("page requests from two threads over real TCP sockets") {
  FrameKey key = FrameKey::Generate();
  TcpTransportOptions o1;
  o1.self = 1;
  o1.cluster_key = key;
  o1.peers = {{0, "127.0.0.1:1"}};
  auto t1 = TcpTransport::Create(o1);
  REQUIRE(t1.ok());
  TcpTransportOptions o0;
  o0.self = 0;
  o0.cluster_key = key;
  o0.peers = {{1, absl::StrCat("127.0.0.1:", (*t1)->listen_port())}};
  auto t0 = TcpTransport::Create(o0);
  REQUIRE(t0.ok());
  REQUIRE((*t0)->WaitForPeer(1, absl::Seconds(20)).ok());
  REQUIRE((*t1)->WaitForPeer(0, absl::Seconds(20)).ok());
  RpcChannel client(t0->get()), server(t1->get());
  ServePages(server);
  std::string other_problem;
  std::thread other([&] {
    for (uint64_t p = 500; p < 800 && other_problem.empty(); ++p) {
      other_problem = GrantProblem(RequestPage(client, p), p);
    }
  });
  for (uint64_t p = 0; p < 300; ++p) CheckGrant(RequestPage(client, p), p);
  other.join();
  CHECK(other_problem == "");
  CHECK(client.drops().Total() == 0);
  CHECK((*t0)->GetStats().drops.Total() == 0);
  CHECK((*t1)->GetStats().drops.Total() == 0);
}

}  // namespace amalgam::fabric
