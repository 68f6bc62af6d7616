// Two processes over real TCP: a child process (tcp_page_sender, node 0) sends 10,000 pages to
// this process (node 1); every page must arrive intact, in order, exactly once.
#include <spawn.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "fabric/tcp_transport.h"
#include "fabric/test_pages.h"

extern char** environ;

namespace amalgam::fabric {

TEST_CASE("10,000 pages from another process arrive intact, in order, exactly once") {
  constexpr uint64_t kPages = 10000;
  const char* srcdir = std::getenv("TEST_SRCDIR");
  REQUIRE(srcdir != nullptr);
  std::string helper = absl::StrCat(srcdir, "/amalgam/fabric/tcp_page_sender");

  FrameKey key = FrameKey::Generate();
  TcpTransportOptions o;
  o.self = 1;
  o.cluster_key = key;
  o.peers = {{0, "127.0.0.1:1"}};  // node 0 dials us
  auto t = TcpTransport::Create(o);
  REQUIRE(t.ok());

  std::string key_hex = key.ToHex();
  std::string address = absl::StrCat("127.0.0.1:", (*t)->listen_port());
  std::string pages = std::to_string(kPages);
  char* argv[] = {helper.data(), key_hex.data(), address.data(), pages.data(), nullptr};
  pid_t pid;
  REQUIRE(posix_spawn(&pid, helper.c_str(), nullptr, nullptr, argv, environ) == 0);

  uint64_t received = 0;
  for (uint64_t i = 0; i < kPages; ++i) {
    auto m = (*t)->Receive(absl::Seconds(60));
    REQUIRE(m.ok());
    REQUIRE(m->source() == 0);
    REQUIRE(m->message().getPageGrant().getPage() == i);
    REQUIRE(testing::PageMatches(i, m->page()));
    ++received;
  }
  CHECK(received == kPages);
  // Tell the sender we are done; nothing more may arrive.
  capnp::MallocMessageBuilder pong;
  pong.initRoot<schema::Message>().initPong().setCounter(kPages);
  REQUIRE((*t)->Send(0, pong).ok());
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK((*t)->Receive(absl::Milliseconds(100)).status().code() ==
        absl::StatusCode::kDeadlineExceeded);
  TransportStats s = (*t)->GetStats();
  CHECK(s.frames_received == kPages);
  CHECK(s.drops.Total() == 0);
}

}  // namespace amalgam::fabric
