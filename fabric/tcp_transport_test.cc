// TcpTransport over real loopback sockets: ordered, intact, exactly-once delivery; wrong keys;
// garbage, oversized, replayed and truncated frames from a raw socket; reconnects.
#include "fabric/tcp_transport.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "fabric/peer_session.h"
#include "fabric/tcp_test_node.h"
#include "fabric/test_pages.h"

namespace amalgam::fabric {
namespace {

using testing::PageGrant;
using testing::PageMatches;
using testing::PagePattern;

std::unique_ptr<TcpTransport> Make(NodeId self, const FrameKey& key,
                                   std::map<NodeId, std::string> peers) {
  TcpTransportOptions o;
  o.handshake_timeout = absl::Seconds(2);
  return testing::MakeTcpNode(self, key, std::move(peers), o);
}

std::string Addr(const TcpTransport& t) { return testing::LoopbackAddress(t); }

// A pair: node 1 listens, node 0 dials it.
struct Pair {
  explicit Pair(const FrameKey& key) {
    b = Make(1, key, {{0, "127.0.0.1:1"}});  // never dialled: node 0 has the lower id
    a = Make(0, key, {{1, Addr(*b)}});
    REQUIRE(a->WaitForPeer(1, absl::Seconds(20)).ok());
    REQUIRE(b->WaitForPeer(0, absl::Seconds(20)).ok());
  }
  std::unique_ptr<TcpTransport> a, b;
};

// Receives `n` page grants from `from` and checks order, contents and no duplicates.
void ExpectPages(TcpTransport& t, NodeId from, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) {
    auto m = t.Receive(absl::Seconds(20));
    REQUIRE(m.ok());
    REQUIRE(m->source() == from);
    REQUIRE(m->type() == schema::Message::PAGE_GRANT);
    REQUIRE(m->message().getPageGrant().getPage() == i);
    REQUIRE(PageMatches(i, m->page()));
  }
  CHECK(t.Receive(absl::Milliseconds(50)).status().code() == absl::StatusCode::kDeadlineExceeded);
}

// A raw TCP client, for feeding the transport bytes no well-behaved peer would send.
struct RawClient {
  explicit RawClient(int port) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~RawClient() { ::close(fd); }
  void Write(const std::vector<uint8_t>& b) {
    INFO("write of " << b.size() << " bytes, errno " << errno);
    REQUIRE(::send(fd, b.data(), b.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(b.size()));
  }
  std::vector<uint8_t> ReadFrame() {
    std::vector<uint8_t> out(kFrameHeaderSize);
    REQUIRE(::recv(fd, out.data(), out.size(), MSG_WAITALL) == kFrameHeaderSize);
    DropReason why;
    auto size = PeekFrameSize(out, &why);
    REQUIRE(size.ok());
    out.resize(*size);
    ssize_t rest = *size - kFrameHeaderSize;
    REQUIRE(::recv(fd, out.data() + kFrameHeaderSize, rest, MSG_WAITALL) == rest);
    return out;
  }
  // True once the server has closed the connection.
  bool Closed() {
    uint8_t b;
    return ::recv(fd, &b, 1, 0) <= 0;
  }
  int fd;
};

// Polls until `pred` holds (the receive thread counts asynchronously); false after 20 s.
template <typename F>
bool Eventually(F pred) {
  for (int i = 0; i < 2000; ++i) {
    if (pred()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return pred();
}

// One encoded page-grant frame of `session` as bytes.
std::vector<uint8_t> PageFrame(PeerSession& session, uint64_t n) {
  auto page = PagePattern(n);
  FlatMessage msg = PageGrant(n);  // the encoded frame borrows it: keep it alive until copied
  EncodedFrame e;
  REQUIRE(session.Encode(msg.Frame(page), &e).ok());
  std::vector<uint8_t> out(e.size());
  e.CopyTo(out.data());
  return out;
}

// The dialler's third handshake step: a Heartbeat under the session key (seq 1).
void SendProof(RawClient& raw, PeerSession& session) {
  capnp::MallocMessageBuilder b;
  b.initRoot<schema::Message>().initHeartbeat().setNodeId(0);
  FlatMessage flat(b);
  EncodedFrame e;
  REQUIRE(session.Encode(flat.Frame(), &e).ok());
  std::vector<uint8_t> out(e.size());
  e.CopyTo(out.data());
  raw.Write(out);
}

}  // namespace

TEST_CASE("pages both ways arrive intact, in order, exactly once") {
  FrameKey key = FrameKey::Generate();
  Pair p(key);
  constexpr uint64_t kPages = 2000;
  std::atomic<int> send_failures{0};  // Catch2 assertions are not thread-safe: count, check later
  std::thread sender([&] {
    for (uint64_t i = 0; i < kPages; ++i) {
      auto data = PagePattern(i);
      if (!p.b->SendFrame(0, PageGrant(i).Frame(data)).ok()) send_failures++;
    }
  });
  for (uint64_t i = 0; i < kPages; ++i) {
    auto data = PagePattern(i);
    REQUIRE(p.a->SendFrame(1, PageGrant(i).Frame(data)).ok());
  }
  ExpectPages(*p.b, 0, kPages);
  sender.join();
  REQUIRE(send_failures == 0);
  ExpectPages(*p.a, 1, kPages);
  TransportStats sa = p.a->GetStats(), sb = p.b->GetStats();
  CHECK(sa.frames_sent == kPages);
  CHECK(sb.frames_received == kPages);
  CHECK(sa.drops.Total() == 0);
  CHECK(sb.drops.Total() == 0);
}

TEST_CASE("unknown destination and closed transport are clear errors") {
  FrameKey key = FrameKey::Generate();
  Pair p(key);
  auto m = PageGrant(1);
  CHECK(p.a->SendFrame(7, m.Frame()).code() == absl::StatusCode::kNotFound);
  p.a->Close();
  CHECK(p.a->SendFrame(1, m.Frame()).code() == absl::StatusCode::kCancelled);
  CHECK(p.a->Receive(absl::Seconds(1)).status().code() == absl::StatusCode::kCancelled);
}

TEST_CASE("a peer with the wrong cluster key cannot join") {
  auto b = Make(1, FrameKey::Generate(), {{0, "127.0.0.1:1"}});
  auto a = Make(0, FrameKey::Generate(), {{1, Addr(*b)}});
  CHECK(a->WaitForPeer(1, absl::Milliseconds(500)).code() == absl::StatusCode::kDeadlineExceeded);
  CHECK(Eventually([&] { return b->GetStats().drops.Get(DropReason::kBadMac) >= 1; }));
  CHECK(Eventually([&] { return a->GetStats().drops.Get(DropReason::kHandshake) >= 1; }));
  CHECK(b->GetStats().connects == 0);
  CHECK(a->SendFrame(1, PageGrant(0).Frame()).code() == absl::StatusCode::kUnavailable);
}

TEST_CASE("garbage, oversized and wrong-version frames are counted and the link is dropped") {
  FrameKey key = FrameKey::Generate();
  auto b = Make(1, key, {{0, "127.0.0.1:1"}});
  {
    RawClient raw(b->listen_port());
    raw.Write(std::vector<uint8_t>(300, 0xab));
    CHECK(raw.Closed());
  }
  CHECK(Eventually([&] { return b->GetStats().drops.Get(DropReason::kBadMagic) == 1; }));
  {
    RawClient raw(b->listen_port());
    FrameHeader h;
    h.payload_len = 1 << 20;
    std::vector<uint8_t> hdr(kFrameHeaderSize);
    WriteFrameHeader(h, hdr.data());
    raw.Write(hdr);
    CHECK(raw.Closed());
  }
  CHECK(Eventually([&] { return b->GetStats().drops.Get(DropReason::kTooLong) == 1; }));
  {
    RawClient raw(b->listen_port());
    std::array<uint8_t, kNonceSize> nonce{};
    auto hello = BuildHelloFrame(key, 0, 1, nonce);
    hello[4] = kWireVersion + 1;
    raw.Write(hello);
    CHECK(raw.Closed());
  }
  CHECK(Eventually([&] { return b->GetStats().drops.Get(DropReason::kBadVersion) == 1; }));
  {
    // A well-formed Hello from a node that is not in the peer list.
    RawClient raw(b->listen_port());
    std::array<uint8_t, kNonceSize> nonce{};
    raw.Write(BuildHelloFrame(key, 9, 1, nonce));
    CHECK(raw.Closed());
  }
  CHECK(Eventually([&] { return b->GetStats().drops.Get(DropReason::kUnknownPeer) == 1; }));
  // The transport still serves a real peer afterwards.
  auto a = Make(0, key, {{1, Addr(*b)}});
  REQUIRE(a->WaitForPeer(1, absl::Seconds(20)).ok());
  auto data = PagePattern(0);
  REQUIRE(a->SendFrame(1, PageGrant(0).Frame(data)).ok());
  ExpectPages(*b, 0, 1);
}

TEST_CASE("replayed frames are dropped; a peer vanishing mid-page is counted, no crash") {
  FrameKey key = FrameKey::Generate();
  auto b = Make(1, key, {{0, "127.0.0.1:1"}});
  RawClient raw(b->listen_port());
  // Act as node 0: handshake by hand.
  std::array<uint8_t, kNonceSize> nonce{};
  RandomBytes(absl::MakeSpan(nonce));
  raw.Write(BuildHelloFrame(key, 0, 1, nonce));
  auto reply = raw.ReadFrame();
  DropReason why;
  auto hello = ParseHelloFrame(key, reply, 0, &why);
  REQUIRE(hello.ok());
  REQUIRE(hello->node == 1);
  PeerSession session = PeerSession::FromHandshake(key, 0, nonce, *hello);
  SendProof(raw, session);

  auto frame0 = PageFrame(session, 0);
  raw.Write(frame0);
  raw.Write(frame0);  // replay
  raw.Write(PageFrame(session, 1));
  ExpectPages(*b, 0, 2);
  CHECK(b->GetStats().drops.Get(DropReason::kReplay) == 1);

  // Forged: a correct length but a flipped page bit. Dropped, and the link is reset.
  auto forged = PageFrame(session, 2);
  forged[kFrameHeaderSize + 100] ^= 1;
  raw.Write(forged);
  CHECK(raw.Closed());
  CHECK(Eventually([&] { return b->GetStats().drops.Get(DropReason::kBadMac) == 1; }));

  // A second legitimate connection that dies in the middle of a page.
  RawClient raw2(b->listen_port());
  RandomBytes(absl::MakeSpan(nonce));
  raw2.Write(BuildHelloFrame(key, 0, 1, nonce));
  hello = ParseHelloFrame(key, raw2.ReadFrame(), 0, &why);
  REQUIRE(hello.ok());
  PeerSession session2 = PeerSession::FromHandshake(key, 0, nonce, *hello);
  SendProof(raw2, session2);
  auto partial = PageFrame(session2, 3);
  partial.resize(kFrameHeaderSize + 2000);
  raw2.Write(partial);
  ::shutdown(raw2.fd, SHUT_RDWR);
  CHECK(Eventually([&] { return b->GetStats().drops.Get(DropReason::kTruncated) == 1; }));
  CHECK(b->Receive(absl::Milliseconds(100)).status().code() == absl::StatusCode::kDeadlineExceeded);
  CHECK(b->GetStats().frames_received == 2);
}

TEST_CASE("a replayed Hello without the key's proof cannot displace the live link") {
  FrameKey key = FrameKey::Generate();
  Pair p(key);
  RawClient raw(p.b->listen_port());
  std::array<uint8_t, kNonceSize> nonce{};
  raw.Write(BuildHelloFrame(key, 0, 1, nonce));  // as if recorded from node 0 earlier
  auto reply = raw.ReadFrame();                  // node 1 answers, then waits for the proof
  CHECK(reply.size() > kFrameHeaderSize);
  auto page = PagePattern(7);
  REQUIRE(p.b->SendFrame(0, PageGrant(0).Frame(page)).ok());
  auto m = p.a->Receive(absl::Seconds(20));
  REQUIRE(m.ok());
  CHECK(PageMatches(7, m->page()));
  CHECK(raw.Closed());  // after the handshake timeout
  CHECK(p.b->GetStats().connects == 1);
  CHECK(p.b->GetStats().drops.Get(DropReason::kHandshake) == 1);
}

TEST_CASE("silent connections are capped and time out; real peers get in afterwards") {
  FrameKey key = FrameKey::Generate();
  auto b = Make(1, key, {{0, "127.0.0.1:1"}});
  {
    std::vector<std::unique_ptr<RawClient>> silent;
    for (int i = 0; i < 70; ++i) silent.push_back(std::make_unique<RawClient>(b->listen_port()));
    CHECK(Eventually([&] { return b->GetStats().drops.Get(DropReason::kHandshake) >= 6; }));
    // Past handshake_timeout (2 s here) the 64 held ones are closed too.
    CHECK(Eventually([&] { return b->GetStats().drops.Get(DropReason::kHandshake) == 70; }));
  }
  auto a = Make(0, key, {{1, Addr(*b)}});
  REQUIRE(a->WaitForPeer(1, absl::Seconds(20)).ok());
}

TEST_CASE("sending to a peer that vanished fails with UNAVAILABLE, without a crash") {
  FrameKey key = FrameKey::Generate();
  Pair p(key);
  p.b.reset();
  auto data = PagePattern(0);
  auto msg = PageGrant(0);
  absl::Status s;
  // The first few frames may still go into the socket buffer before the reset is noticed.
  CHECK(Eventually([&] {
    s = p.a->SendFrame(1, msg.Frame(data));
    return !s.ok();
  }));
  CHECK(s.code() == absl::StatusCode::kUnavailable);
  CHECK(Eventually([&] { return p.a->GetStats().disconnects >= 1; }));
}

TEST_CASE("the dialling side reconnects after the peer restarts") {
  FrameKey key = FrameKey::Generate();
  auto b = Make(1, key, {{0, "127.0.0.1:1"}});
  std::string address = Addr(*b);
  TcpTransportOptions o;
  o.self = 1;
  o.cluster_key = key;
  o.peers = {{0, "127.0.0.1:1"}};
  o.listen_address = address;
  auto a = Make(0, key, {{1, address}});
  REQUIRE(a->WaitForPeer(1, absl::Seconds(20)).ok());
  b.reset();  // node 1 goes away
  REQUIRE(Eventually([&] { return a->GetStats().disconnects == 1; }));
  auto restarted = TcpTransport::Create(o);  // same address
  REQUIRE(restarted.ok());
  REQUIRE(a->WaitForPeer(1, absl::Seconds(20)).ok());
  auto data = PagePattern(0);
  // The link may still be settling (the old socket's close racing the new Hello): retry.
  absl::Status s;
  for (int i = 0; i < 100; ++i) {
    s = a->SendFrame(1, PageGrant(0).Frame(data));
    if (s.ok()) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  REQUIRE(s.ok());
  ExpectPages(**restarted, 0, 1);
  CHECK(a->GetStats().connects == 2);
}

}  // namespace amalgam::fabric
