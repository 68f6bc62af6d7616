#include "fabric/dpdk/reliability.h"

#include <catch2/catch.hpp>
#include <deque>
#include <random>
#include <string>
#include <vector>

namespace amalgam::fabric {
namespace {

// An in-memory link that drops, duplicates and reorders what crosses it. Pure logic.
template <typename T>
struct LossyLink {
  std::mt19937 rng;
  double loss, dup, reorder;
  std::deque<T> wire;
  LossyLink(uint32_t seed, double l, double d, double r) : rng(seed), loss(l), dup(d), reorder(r) {}
  bool Chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; }
  void Send(const T& t) {
    if (Chance(loss)) return;
    if (Chance(reorder) && !wire.empty()) {
      wire.insert(wire.begin() + rng() % wire.size(), t);
    } else {
      wire.push_back(t);
    }
    if (Chance(dup)) wire.push_back(t);
  }
  bool Recv(T* t) {
    if (wire.empty()) return false;
    *t = wire.front();
    wire.pop_front();
    return true;
  }
};

struct Data {
  uint64_t seq;
  std::string text;
};
struct Ack {
  uint64_t cumulative;
  uint64_t sack;
};

// Drives sender and receiver through the lossy links until all `n` messages are delivered.
// Returns what the consumer saw, in order.
std::vector<std::string> Transfer(int n, double loss, double dup, double reorder, uint32_t seed,
                                  uint64_t* retransmits) {
  RetransmitOptions opt;
  opt.window = 32;
  opt.initial_rto_ns = 50;
  opt.min_rto_ns = 50;
  opt.max_rto_ns = 400;
  RetransmitQueue<std::string> tx(opt);
  ReorderBuffer<std::string> rx(64);
  LossyLink<Data> fwd(seed, loss, dup, reorder);
  LossyLink<Ack> back(seed + 1, loss, dup, reorder);
  std::vector<std::string> got;
  uint64_t next_seq = 1;
  int64_t now = 0;
  while (static_cast<int>(got.size()) < n && now < 10'000'000) {
    now += 1;
    while (next_seq <= static_cast<uint64_t>(n) && !tx.Full()) {
      std::string m = "message " + std::to_string(next_seq);
      fwd.Send({next_seq, m});
      tx.Add(next_seq, m, now);
      ++next_seq;
    }
    Data d;
    bool any = false;
    while (fwd.Recv(&d)) {
      any = true;
      if (rx.Check(d.seq) == ReorderBuffer<std::string>::Verdict::kNew) rx.Insert(d.seq, d.text);
    }
    while (auto m = rx.Pop()) got.push_back(*m);
    if (any) back.Send({rx.cumulative(), rx.sack()});
    Ack a;
    while (back.Recv(&a)) tx.OnAck(a.cumulative, a.sack, now);
    tx.ResendDue(now, [&](uint64_t seq, const std::string& p) { fwd.Send({seq, p}); });
  }
  *retransmits = tx.retransmits();
  return got;
}

TEST_CASE("a perfect link delivers everything once, in order, without retransmits") {
  uint64_t re = 0;
  auto got = Transfer(2000, 0, 0, 0, 1, &re);
  REQUIRE(got.size() == 2000);
  for (int i = 0; i < 2000; ++i) REQUIRE(got[i] == "message " + std::to_string(i + 1));
  REQUIRE(re == 0);
}

TEST_CASE("loss, duplication and reordering still give exactly-once in-order delivery") {
  for (uint32_t seed : {1u, 2u, 3u}) {
    uint64_t re = 0;
    auto got = Transfer(3000, 0.2, 0.1, 0.2, seed, &re);
    REQUIRE(got.size() == 3000);
    for (int i = 0; i < 3000; ++i) REQUIRE(got[i] == "message " + std::to_string(i + 1));
    REQUIRE(re > 0);  // the loss really happened and was repaired
  }
}

TEST_CASE("selective acks release only what arrived; the hole is retransmitted") {
  RetransmitOptions opt;
  opt.initial_rto_ns = 100;
  opt.min_rto_ns = 100;
  RetransmitQueue<int> tx(opt);
  for (int s = 1; s <= 5; ++s) tx.Add(s, s * 10, 0);
  // Receiver has 1, 2, 4, 5: cumulative 2, bits for 4 (=2+2+0) and 5.
  REQUIRE(tx.OnAck(2, 0b11, 10) == 4);
  REQUIRE(tx.in_flight() == 1);
  std::vector<uint64_t> resent;
  tx.ResendDue(50, [&](uint64_t s, int) { resent.push_back(s); });
  REQUIRE(resent.empty());  // not due yet
  tx.ResendDue(200, [&](uint64_t s, int) { resent.push_back(s); });
  REQUIRE(resent == std::vector<uint64_t>{3});
  // Backoff: not resent again right away.
  tx.ResendDue(201, [&](uint64_t s, int) { resent.push_back(s); });
  REQUIRE(resent.size() == 1);
  REQUIRE(tx.OnAck(5, 0, 300) == 1);
  REQUIRE(tx.in_flight() == 0);
  REQUIRE(tx.NextDeadline() == INT64_MAX);
  // Stale and repeated acks change nothing.
  REQUIRE(tx.OnAck(3, 0, 300) == 0);
}

TEST_CASE("progress restarts timers; a SACK hole is resent before its timeout") {
  RetransmitOptions opt;
  opt.initial_rto_ns = 5'000'000;
  opt.min_rto_ns = 5'000'000;
  RetransmitQueue<int> tx(opt);
  for (int s = 1; s <= 4; ++s) tx.Add(s, s, 0);
  // Cumulative progress at 0.1 ms: 2..4 are late, not lost; their timers restart (5.1 ms), so
  // nothing is due at 5.05 ms although they were sent at 0 with a 5 ms RTO.
  tx.OnAck(1, 0, 100'000);
  std::vector<uint64_t> resent;
  tx.ResendDue(5'050'000, [&](uint64_t s, int) { resent.push_back(s); });
  REQUIRE(resent.empty());
  // 3 and 4 arrived, 2 did not: 2 is resent at once, before its timer.
  tx.OnAck(1, 0b11, 5'080'000);
  tx.ResendDue(5'080'000, [&](uint64_t s, int) { resent.push_back(s); });
  REQUIRE(resent == std::vector<uint64_t>{2});
  // The same ack again right away does not resend it again.
  tx.OnAck(1, 0b11, 5'080'100);
  tx.ResendDue(5'080'100, [&](uint64_t s, int) { resent.push_back(s); });
  REQUIRE(resent.size() == 1);
}

TEST_CASE("the reorder buffer reports duplicates, holds gaps and bounds its window") {
  ReorderBuffer<int> rx(8);
  using V = ReorderBuffer<int>::Verdict;
  REQUIRE(rx.Check(0) == V::kDuplicate);  // seq 0 is never valid
  REQUIRE(rx.Check(9) == V::kBeyondWindow);
  rx.Insert(3, 3);
  rx.Insert(2, 2);
  REQUIRE(rx.Check(3) == V::kDuplicate);
  REQUIRE(rx.ready() == 0);
  REQUIRE(rx.cumulative() == 0);
  REQUIRE(rx.sack() == 0b11);  // 2 and 3 held, 1 missing
  rx.Insert(1, 1);
  REQUIRE(rx.cumulative() == 3);
  REQUIRE(rx.sack() == 0);
  for (int want = 1; want <= 3; ++want) {
    auto v = rx.Pop();
    REQUIRE(v.has_value());
    REQUIRE(*v == want);
  }
  REQUIRE_FALSE(rx.Pop().has_value());
  REQUIRE(rx.Check(2) == V::kDuplicate);
  rx.Insert(2, 99);  // ignored
  REQUIRE_FALSE(rx.Pop().has_value());
}

TEST_CASE("the RTO adapts to measured round trips and stays within bounds") {
  RetransmitOptions opt;
  opt.initial_rto_ns = 1'000'000;
  opt.min_rto_ns = 1000;
  opt.max_rto_ns = 10'000'000;
  RetransmitQueue<int> tx(opt);
  for (uint64_t s = 1; s <= 100; ++s) {
    tx.Add(s, 0, s * 1000);
    tx.OnAck(s, 0, s * 1000 + 500);
  }
  REQUIRE(tx.rto_ns() >= opt.min_rto_ns);
  REQUIRE(tx.rto_ns() < opt.initial_rto_ns);
}

}  // namespace
}  // namespace amalgam::fabric
