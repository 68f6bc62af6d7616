#include "fabric/dpdk/dpdk_test_util.h"

#include <capnp/message.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "fabric/message.h"
#include "fabric/schema/messages.capnp.h"

namespace amalgam::fabric::testing {

void FillPage(uint64_t n, uint8_t* page) {
  for (size_t i = 0; i < kPageSize; i += 8) {
    uint64_t w = (n + 1) * 0x9E3779B97F4A7C15ull ^ (i * 0xBF58476D1CE4E5B9ull);
    std::memcpy(page + i, &w, 8);
  }
}

bool CheckPage(uint64_t n, const uint8_t* page, size_t size) {
  if (size != kPageSize) return false;
  uint8_t want[kPageSize];
  FillPage(n, want);
  return std::memcmp(want, page, kPageSize) == 0;
}

namespace {

void SetError(NodeReport* r, const std::string& what) {
  std::snprintf(r->error, sizeof(r->error), "%s", what.c_str());
}

void Collect(const DpdkTransport& t, NodeReport* r) {
  TransportStats s = t.GetStats();
  for (int i = 0; i < kDropReasonCount; ++i) r->drops[i] = s.drops.counts[i];
  DpdkLinkStats l = t.GetLinkStats();
  r->retransmits = l.retransmits;
  r->test_rx_dropped = l.test_rx_dropped;
  r->duplicates = l.duplicates;
  r->not_for_us = l.not_for_us;
  r->link_frames_received = l.link_frames_received;
  r->reassembled = l.reassembly.completed;
  r->connects = s.connects;
  r->disconnects = s.disconnects;
  r->held_hellos = l.held_hellos;
  std::fprintf(stderr, "node %u: %s | %s\n", t.self(), s.ToString().c_str(), l.ToString().c_str());
}

absl::Status SendPage(DpdkTransport& t, NodeId peer, uint64_t n, const uint8_t* page) {
  capnp::MallocMessageBuilder b;
  auto g = b.initRoot<schema::Message>().initPageGrant();
  g.setPage(n);
  g.setHasData(page != nullptr);
  g.setReqId(n);
  g.setState(schema::PageState::SHARED);
  FlatMessage flat(b);
  absl::Span<const uint8_t> payload;
  if (page != nullptr) payload = absl::MakeConstSpan(page, kPageSize);
  absl::Status s;
  // UNAVAILABLE = window full for send_timeout; the receiver may be descheduled: retry a bit.
  for (int attempt = 0; attempt < 10; ++attempt) {
    s = t.SendFrame(peer, flat.Frame(payload));
    if (!absl::IsUnavailable(s)) break;
  }
  return s;
}

}  // namespace

NodeReport RunPageSender(DpdkTransportOptions options, NodeId peer, uint64_t count, int go_fd,
                         int ready_fd) {
  NodeReport r;
  auto t = DpdkTransport::Create(std::move(options));
  if (!t.ok()) {
    SetError(&r, "sender: " + std::string(t.status().ToString()));
    return r;
  }
  absl::Status s = (*t)->WaitForPeer(peer, absl::Seconds(20));
  if (!s.ok()) {
    SetError(&r, "sender: " + s.ToString());
    return r;
  }
  if (ready_fd >= 0) {
    char c = 'r';
    (void)!write(ready_fd, &c, 1);
  }
  if (go_fd >= 0) {
    char c;
    (void)!read(go_fd, &c, 1);
  }
  std::vector<uint8_t> page(kPageSize);
  for (uint64_t n = 0; n < count; ++n) {
    FillPage(n, page.data());
    s = SendPage(**t, peer, n, page.data());
    if (!s.ok()) {
      SetError(&r, "sender: page " + std::to_string(n) + ": " + s.ToString());
      Collect(**t, &r);
      return r;
    }
    ++r.pages;
  }
  // Wait for the receiver's "done" (a PageRequest for page `count`).
  while (true) {
    auto m = (*t)->Receive(absl::Seconds(40));
    if (!m.ok()) {
      SetError(&r, "sender: no done from the receiver: " + m.status().ToString());
      break;
    }
    if (m->type() == schema::Message::PAGE_REQUEST &&
        m->message().getPageRequest().getPage() == count) {
      r.ok = 1;
      break;
    }
  }
  // Our acks for "done" must get out before we vanish, or the receiver retransmits into void.
  (void)(*t)->Receive(absl::Milliseconds(100));
  Collect(**t, &r);
  return r;
}

NodeReport RunPageReceiver(DpdkTransportOptions options, NodeId peer, uint64_t count,
                           bool any_start) {
  NodeReport r;
  auto t = DpdkTransport::Create(std::move(options));
  if (!t.ok()) {
    SetError(&r, "receiver: " + std::string(t.status().ToString()));
    return r;
  }
  absl::Status s = (*t)->WaitForPeer(peer, absl::Seconds(20));
  if (!s.ok()) {
    SetError(&r, "receiver: " + s.ToString());
    return r;
  }
  uint64_t next = 0, got = 0;
  while (got < count) {
    auto m = (*t)->Receive(absl::Seconds(20));
    if (!m.ok()) {
      SetError(&r, "receiver: after page " + std::to_string(next) + ": " + m.status().ToString());
      Collect(**t, &r);
      return r;
    }
    if (m->source() != peer || m->type() != schema::Message::PAGE_GRANT) {
      ++r.wrong_type;
      continue;
    }
    uint64_t n = m->message().getPageGrant().getPage();
    if (got++ == 0) {
      r.first_page = n;
      if (any_start) next = n;
    }
    if (n != next) ++r.out_of_order;
    if (!CheckPage(n, m->page().data(), m->page().size())) ++r.bad_pages;
    if (n == next) ++r.pages;
    next = n + 1;
  }
  capnp::MallocMessageBuilder b;
  b.initRoot<schema::Message>().initPageRequest().setPage(any_start ? ~uint64_t{0} : count);
  s = (*t)->Send(peer, b);
  if (s.ok()) s = (*t)->Flush(absl::Seconds(20));
  if (!s.ok()) {
    SetError(&r, "receiver: sending done: " + s.ToString());
  } else {
    r.ok = 1;
  }
  Collect(**t, &r);
  return r;
}

NodeReport RunPageStreamer(DpdkTransportOptions options, NodeId peer, int dones, int seconds) {
  NodeReport r;
  auto t = DpdkTransport::Create(std::move(options));
  if (!t.ok()) {
    SetError(&r, "streamer: " + std::string(t.status().ToString()));
    return r;
  }
  std::vector<uint8_t> page(kPageSize);
  absl::Time end = absl::Now() + absl::Seconds(seconds);
  int seen = 0;
  uint64_t n = 0;
  while (seen < dones && absl::Now() < end) {
    FillPage(n, page.data());
    absl::Status s = SendPage(**t, peer, n, page.data());
    if (s.ok()) {
      ++n;
      ++r.pages;
    } else if (!absl::IsUnavailable(s)) {
      SetError(&r, "streamer: " + s.ToString());
      break;
    }
    while (true) {
      auto m = (*t)->Receive(s.ok() ? absl::ZeroDuration() : absl::Milliseconds(10));
      if (!m.ok()) break;
      if (m->type() == schema::Message::PAGE_REQUEST &&
          m->message().getPageRequest().getPage() == ~uint64_t{0}) {
        ++seen;
      }
    }
  }
  if (seen == dones) r.ok = 1;
  if (!r.ok && r.error[0] == 0) SetError(&r, "streamer: not enough done messages in time");
  (void)(*t)->Receive(absl::Milliseconds(100));
  Collect(**t, &r);
  return r;
}

Child ForkNode(const std::function<NodeReport()>& fn) {
  return testutil::ForkChild<NodeReport>(fn);
}

NodeReport WaitNode(Child& c, std::chrono::milliseconds timeout) {
  NodeReport r;
  if (c.pid < 0) {
    SetError(&r, "fork failed");
    return r;
  }
  bool timed_out = false;
  if (!testutil::WaitChild(c, &r, timeout, &timed_out)) {
    r = NodeReport{};
    SetError(&r, timed_out ? "node process timed out and was killed"
                           : "node process died without a report (crash?)");
  }
  return r;
}

std::string ShortTempDir() {
  char dir[] = "/tmp/amfd.XXXXXX";
  if (mkdtemp(dir) == nullptr) return "/tmp";
  return dir;
}

}  // namespace amalgam::fabric::testing
