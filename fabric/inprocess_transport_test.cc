// InProcessTransport: per-peer order across concurrent senders, pages intact, closed endpoints.
#include "fabric/inprocess_transport.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <thread>
#include <vector>

#include "fabric/test_pages.h"

namespace amalgam::fabric {

TEST_CASE("three nodes: every message arrives once, in per-sender order, pages intact") {
  InProcessHub hub(FrameKey::Generate());
  std::vector<std::unique_ptr<InProcessTransport>> nodes;
  for (NodeId id = 0; id < 3; ++id) {
    auto t = hub.Connect(id);
    REQUIRE(t.ok());
    nodes.push_back(*std::move(t));
  }
  constexpr uint64_t kEach = 300;
  std::atomic<int> send_failures{0};  // Catch2 assertions are not thread-safe: count, check later
  std::vector<std::thread> senders;
  for (NodeId src = 0; src < 3; ++src) {
    senders.emplace_back([&, src] {
      for (uint64_t i = 0; i < kEach; ++i) {
        for (NodeId dst = 0; dst < 3; ++dst) {
          if (dst == src) continue;
          auto page = testing::PagePattern(i);
          auto msg = testing::PageGrant(i);
          if (!nodes[src]->SendFrame(dst, msg.Frame(page)).ok()) send_failures++;
        }
      }
    });
  }
  for (auto& s : senders) s.join();
  REQUIRE(send_failures == 0);
  for (NodeId dst = 0; dst < 3; ++dst) {
    std::map<NodeId, uint64_t> next;
    for (uint64_t n = 0; n < 2 * kEach; ++n) {
      auto m = nodes[dst]->Receive(absl::Seconds(10));
      REQUIRE(m.ok());
      uint64_t page = m->message().getPageGrant().getPage();
      REQUIRE(page == next[m->source()]++);
      REQUIRE(testing::PageMatches(page, m->page()));
    }
    CHECK(nodes[dst]->Receive(absl::Milliseconds(10)).status().code() ==
          absl::StatusCode::kDeadlineExceeded);
    CHECK(nodes[dst]->GetStats().frames_received == 2 * kEach);
    CHECK(nodes[dst]->GetStats().drops.Total() == 0);
  }
}

TEST_CASE("closed endpoints: clear errors on both sides") {
  InProcessHub hub(FrameKey::Generate());
  auto a = hub.Connect(0), b = hub.Connect(1);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  auto msg = testing::PageGrant(1);
  (*b)->Close();
  CHECK((*a)->SendFrame(1, msg.Frame()).code() == absl::StatusCode::kNotFound);
  CHECK((*b)->SendFrame(0, msg.Frame()).code() == absl::StatusCode::kCancelled);
  CHECK((*b)->Receive(absl::Seconds(1)).status().code() == absl::StatusCode::kCancelled);
  // The id is free again for a new endpoint.
  auto b2 = hub.Connect(1);
  REQUIRE(b2.ok());
  REQUIRE((*a)->SendFrame(1, msg.Frame()).ok());
  CHECK((*b2)->Receive(absl::Seconds(10)).ok());
}

}  // namespace amalgam::fabric
