#include "fabric/tcp_transport.h"

#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "fabric/peer_session.h"
#include "fabric/receive_queue.h"
#include "fabric/tcp_frame_reader.h"
#include "fabric/tcp_socket.h"

namespace amalgam::fabric {
namespace {

constexpr size_t kMaxHelloSize = 512;  // a Hello is ~130 bytes; refuse anything bigger unread
constexpr absl::Duration kSendTimeout = absl::Seconds(5);
constexpr absl::Duration kDialTimeout = absl::Seconds(1);
constexpr size_t kMaxPendingHandshakes = 64;  // accepted connections not yet authenticated
constexpr absl::Duration kProofWait = absl::Seconds(1);  // Send's wait for a handshake's end

// One TCP connection. The fd is closed when the last reference goes, so a sender that still
// holds one never writes to a reused descriptor.
struct TcpConn {
  explicit TcpConn(int fd) : fd(fd) {}
  ~TcpConn() { ::close(fd); }
  const int fd;
  bool dialled = false;
  NodeId peer = kAnyNode;  // expected (dialled) or learned from the Hello (accepted)
  std::array<uint8_t, kNonceSize> nonce{};
  bool established = false;
  bool awaiting_proof = false;  // accepted, Hello answered, counted in TcpPeer::pending_proofs
  bool replaced = false;        // a newer connection from the same peer is installed
  absl::Time created = absl::Now();
  // Set once at the handshake; Decode only from the receive thread, Encode only under the
  // peer's mutex.
  std::shared_ptr<PeerSession> session;
  // Receive state (whoever holds the poll role): frames are cut from bulk reads, uncopied.
  TcpFrameReader reader;
};

struct TcpPeer {
  explicit TcpPeer(NodeId id) : id(id) {}
  const NodeId id;
  // Held for the whole write of a frame, which is what keeps frames to one peer in order.
  absl::Mutex mu;
  std::string address ABSL_GUARDED_BY(mu);
  std::shared_ptr<TcpConn> conn ABSL_GUARDED_BY(mu);  // the established link, if any
  bool dialing ABSL_GUARDED_BY(mu) = false;
  // Accepted connections from this peer whose Hello verified and whose proof is one trip away:
  // Send waits for them briefly instead of failing (the dialler already counts the link as up).
  int pending_proofs ABSL_GUARDED_BY(mu) = 0;
  absl::Time next_dial ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  absl::Duration backoff ABSL_GUARDED_BY(mu) = absl::ZeroDuration();
};

}  // namespace

class TcpTransport::Impl {
 public:
  explicit Impl(TcpTransportOptions o) : opts(std::move(o)) {}
  ~Impl() { Shutdown(); }

  absl::Status Start();
  void Shutdown();
  TcpPeer* FindPeer(NodeId id) {
    absl::ReaderMutexLock lock(&peers_mu);
    auto it = peers.find(id);
    return it == peers.end() ? nullptr : it->second.get();
  }
  TcpPeer* AddPeer(NodeId id, const std::string& address) {
    absl::MutexLock lock(&peers_mu);
    auto& p = peers[id];
    if (p == nullptr) p = std::make_unique<TcpPeer>(id);
    absl::MutexLock plock(&p->mu);
    p->address = address;
    p->next_dial = absl::InfinitePast();
    p->backoff = opts.reconnect_min;
    return p.get();
  }
  void WakeDialer() {
    absl::MutexLock lock(&dial_mu);
    dial_wakeups++;
  }
  absl::Status Send(NodeId dst, const OutgoingFrame& frame);

  TcpTransportOptions opts;
  int listen_fd = -1, epoll_fd = -1, wake_fd = -1;
  absl::Mutex peers_mu;
  std::map<NodeId, std::unique_ptr<TcpPeer>> peers ABSL_GUARDED_BY(peers_mu);
  ReceiveQueue queue;
  DropCounters drops;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> frames_sent{0}, frames_received{0}, bytes_sent{0}, bytes_received{0};
  std::atomic<uint64_t> connects{0}, disconnects{0};
  absl::Mutex dial_mu;
  uint64_t dial_wakeups ABSL_GUARDED_BY(dial_mu) = 0;
  absl::Mutex handoff_mu;  // dialled connections waiting for the receive thread
  std::vector<std::shared_ptr<TcpConn>> handoff ABSL_GUARDED_BY(handoff_mu);
  std::thread rx_thread, dial_thread;
  // Whoever holds poll_mu runs epoll and owns conns_. A thread waiting in Receive() takes that
  // role itself, so the kernel wakes the consumer directly when a frame arrives (no hand-off
  // from a helper thread: two fewer wake-ups per round trip). The background thread polls only
  // while nobody has been receiving for a few milliseconds (accepts, handshakes, frames that
  // arrive while the consumer is busy).
  absl::Mutex poll_mu;
  std::atomic<int> receivers{0};
  std::atomic<int64_t> last_receive_ns{0};
  absl::StatusOr<ReceivedMessage> Receive(absl::Duration timeout);
  void Kick() {
    uint64_t one = 1;
    (void)!::write(wake_fd, &one, sizeof(one));
  }

 private:
  void ReceiveLoop();
  void DialLoop();
  void AddConn(std::shared_ptr<TcpConn> conn);
  void CloseConn(const std::shared_ptr<TcpConn>& conn);
  void DialFailed(TcpPeer* peer);
  bool OnReadable(TcpConn* conn);
  bool OnFrame(TcpConn* conn, FrameBuffer frame);
  bool OnHello(TcpConn* conn, FrameBuffer frame);
  bool OnProof(TcpConn* conn, FrameBuffer frame);
  void Install(TcpConn* conn, TcpPeer* peer);
  void PollOnce(int timeout_ms) ABSL_EXCLUSIVE_LOCKS_REQUIRED(poll_mu);
  size_t PendingHandshakes() const {
    size_t n = 0;
    for (const auto& [fd, conn] : conns_) n += conn->established ? 0 : 1;
    return n;
  }
  // Only the holder of poll_mu.
  absl::flat_hash_map<int, std::shared_ptr<TcpConn>> conns_;
  uint64_t polls_ = 0;
};

absl::Status TcpTransport::Impl::Start() {
  auto fd = ListenTcp(opts.listen_address);
  if (!fd.ok()) return fd.status();
  listen_fd = *fd;
  epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd < 0 || wake_fd < 0) {
    return absl::InternalError(absl::StrCat("epoll/eventfd: ", std::strerror(errno)));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = listen_fd;
  ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &ev);
  ev.data.fd = wake_fd;
  ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &ev);
  for (const auto& [id, address] : opts.peers) {
    if (id != opts.self) AddPeer(id, address);
  }
  rx_thread = std::thread([this] { ReceiveLoop(); });
  dial_thread = std::thread([this] { DialLoop(); });
  return absl::OkStatus();
}

void TcpTransport::Impl::Shutdown() {
  if (stop.exchange(true)) return;
  uint64_t one = 1;
  if (wake_fd >= 0) (void)!::write(wake_fd, &one, sizeof(one));
  WakeDialer();
  if (rx_thread.joinable()) rx_thread.join();
  if (dial_thread.joinable()) dial_thread.join();
  {
    // A Receive() caller that is polling sees `stop` within one epoll timeout and lets go.
    if (wake_fd >= 0) Kick();
    absl::MutexLock lock(&poll_mu);
    for (auto& [fd, conn] : conns_) ::shutdown(fd, SHUT_RDWR);
    conns_.clear();
  }
  {
    absl::MutexLock lock(&peers_mu);
    for (auto& [id, p] : peers) {
      absl::MutexLock plock(&p->mu);
      p->conn.reset();
    }
  }
  {
    absl::MutexLock lock(&handoff_mu);
    handoff.clear();
  }
  queue.Close();
  for (int* fd : {&listen_fd, &epoll_fd, &wake_fd}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
}

void TcpTransport::Impl::DialFailed(TcpPeer* peer) {
  absl::MutexLock lock(&peer->mu);
  peer->dialing = false;
  peer->next_dial = absl::Now() + peer->backoff;
  peer->backoff = std::min(peer->backoff * 2, opts.reconnect_max);
}

// The lower node id dials; the higher one accepts. One dial at a time per peer, with backoff.
void TcpTransport::Impl::DialLoop() {
  while (!stop.load()) {
    uint64_t seen;
    {
      absl::MutexLock lock(&dial_mu);
      seen = dial_wakeups;  // before the scan, so a wake-up during it is not lost
    }
    std::vector<std::pair<TcpPeer*, std::string>> due;
    // Sleep until the earliest pending re-dial, at most 1 s (disconnects wake us early).
    absl::Duration nap = absl::Seconds(1);
    {
      absl::ReaderMutexLock lock(&peers_mu);
      absl::Time now = absl::Now();
      for (auto& [id, p] : peers) {
        if (id <= opts.self) continue;
        absl::MutexLock plock(&p->mu);
        if (p->conn != nullptr || p->dialing) continue;
        if (now >= p->next_dial) {
          p->dialing = true;
          due.emplace_back(p.get(), p->address);
        } else {
          nap = std::min(nap, p->next_dial - now);
        }
      }
    }
    for (auto& [peer, address] : due) {
      auto fd = ConnectTcp(address, kDialTimeout);
      if (!fd.ok()) {
        DialFailed(peer);
        continue;
      }
      auto conn = std::make_shared<TcpConn>(*fd);
      conn->dialled = true;
      conn->peer = peer->id;
      RandomBytes(absl::MakeSpan(conn->nonce));
      std::vector<uint8_t> hello =
          BuildHelloFrame(opts.cluster_key, opts.self, peer->id, conn->nonce);
      iovec iov{hello.data(), hello.size()};
      if (!WriteAll(conn->fd, &iov, 1, kDialTimeout).ok()) {
        DialFailed(peer);
        continue;
      }
      {
        absl::MutexLock lock(&handoff_mu);
        handoff.push_back(std::move(conn));
      }
      uint64_t one = 1;
      (void)!::write(wake_fd, &one, sizeof(one));
    }
    if (!due.empty()) nap = std::min(nap, opts.reconnect_min);  // failures set next_dial
    absl::MutexLock lock(&dial_mu);
    auto woken = [this, seen]()
                     ABSL_EXCLUSIVE_LOCKS_REQUIRED(dial_mu) { return dial_wakeups != seen; };
    dial_mu.AwaitWithTimeout(absl::Condition(&woken), std::max(nap, absl::Milliseconds(1)));
  }
}

void TcpTransport::Impl::AddConn(std::shared_ptr<TcpConn> conn) {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.fd = conn->fd;
  ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, conn->fd, &ev);
  conns_[conn->fd] = std::move(conn);
}

void TcpTransport::Impl::CloseConn(const std::shared_ptr<TcpConn>& conn) {
  ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, conn->fd, nullptr);
  ::shutdown(conn->fd, SHUT_RDWR);
  TcpPeer* peer = conn->peer == kAnyNode ? nullptr : FindPeer(conn->peer);
  if (peer != nullptr && conn->awaiting_proof) {
    absl::MutexLock lock(&peer->mu);
    --peer->pending_proofs;
    conn->awaiting_proof = false;
  }
  if (peer != nullptr) {
    if (conn->established) {
      disconnects.fetch_add(1);
      absl::MutexLock lock(&peer->mu);
      if (peer->conn == conn) peer->conn.reset();
      peer->next_dial = absl::Now() + peer->backoff;
    } else if (conn->dialled) {
      drops.Count(DropReason::kHandshake);  // the peer refused us (wrong key, version, id)
      DialFailed(peer);
    }
    WakeDialer();
  }
  std::shared_ptr<TcpConn> keep = conn;  // conn may be a reference into conns_
  conns_.erase(keep->fd);
}

void TcpTransport::Impl::ReceiveLoop() {
  constexpr int64_t kConsumerGraceNs = 10'000'000;
  while (!stop.load()) {
    if (receivers.load() > 0 ||
        absl::GetCurrentTimeNanos() - last_receive_ns.load() < kConsumerGraceNs) {
      absl::SleepFor(absl::Milliseconds(10));  // a consumer polls for itself
      continue;
    }
    absl::MutexLock lock(&poll_mu);
    if (receivers.load() > 0 || stop.load()) continue;
    PollOnce(200);  // kicked through wake_fd by Receive(), the dialer and Shutdown()
  }
}

void TcpTransport::Impl::PollOnce(int timeout_ms) {
  epoll_event events[32];
  {
    int n = ::epoll_wait(epoll_fd, events, 32, timeout_ms);
    for (int i = 0; i < n && !stop.load(); ++i) {
      int fd = events[i].data.fd;
      if (fd == listen_fd) {
        for (;;) {
          int c = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break;
          if (PendingHandshakes() >= kMaxPendingHandshakes) {
            // Unauthenticated connections are cheap to open: cap what they can hold.
            drops.Count(DropReason::kHandshake);
            ::close(c);
            continue;
          }
          PrepareSocket(c);
          AddConn(std::make_shared<TcpConn>(c));
        }
      } else if (fd == wake_fd) {
        uint64_t v;
        (void)!::read(wake_fd, &v, sizeof(v));
        std::vector<std::shared_ptr<TcpConn>> fresh;
        {
          absl::MutexLock lock(&handoff_mu);
          fresh.swap(handoff);
        }
        for (auto& c : fresh) AddConn(std::move(c));
      } else {
        auto it = conns_.find(fd);
        if (it == conns_.end()) continue;
        std::shared_ptr<TcpConn> conn = it->second;
        if (!OnReadable(conn.get())) CloseConn(conn);
      }
    }
    // Connections that never complete a Hello are closed after the handshake timeout. Checked
    // when epoll idles and on every 256th busy poll: the clock read is not free on a hot path.
    if (n > 0 && (++polls_ & 255) != 0) return;
    absl::Time now = absl::Now();
    std::vector<std::shared_ptr<TcpConn>> stale;
    for (auto& [fd, conn] : conns_) {
      if (!conn->established && now - conn->created > opts.handshake_timeout) stale.push_back(conn);
    }
    for (auto& conn : stale) {
      if (!conn->dialled) drops.Count(DropReason::kHandshake);
      CloseConn(conn);
    }
  }
}

absl::StatusOr<ReceivedMessage> TcpTransport::Impl::Receive(absl::Duration timeout) {
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + timeout;
  // Spin-then-block: for the first receive_spin of this call the consumer polls without
  // sleeping, so a reply that comes back within a round trip costs no scheduler wake-up (on this
  // VM a wake-up is microseconds). Bounded, so a waiting node never holds a core for long.
  const absl::Time spin_until = start + std::min(opts.receive_spin, timeout);
  receivers.fetch_add(1);
  auto leave = absl::MakeCleanup([this] {
    last_receive_ns.store(absl::GetCurrentTimeNanos());
    receivers.fetch_sub(1);
  });
  for (;;) {
    if (auto m = queue.TryPop(); m.has_value()) return *std::move(m);
    if (stop.load()) return absl::CancelledError("fabric transport closed");
    const absl::Time now = absl::Now();
    absl::Duration left = deadline - now;
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError("no fabric message within the timeout");
    }
    if (!poll_mu.TryLock()) {
      Kick();          // the background thread (or another receiver) is in epoll_wait: wake it
      poll_mu.Lock();  // held for at most one epoll timeout (<= 100 ms), and it was kicked
      // Whoever held the role may have queued our message meanwhile: never block on top of it.
      if (queue.size() > 0) {
        poll_mu.Unlock();
        continue;
      }
    }
    if (!stop.load()) {
      int ms = now < spin_until
                   ? 0
                   : static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 100));
      PollOnce(ms);
    }
    poll_mu.Unlock();
    // While spinning, let a runnable peer (on a shared core, the other end of this round trip)
    // run first.
    if (now < spin_until && queue.size() == 0) sched_yield();
  }
}

// Delivers every complete frame buffered, reading as needed; returns once the socket looks
// drained (level-triggered epoll calls again for more). False: close the connection.
bool TcpTransport::Impl::OnReadable(TcpConn* c) {
  bool drained = false;
  for (;;) {
    // An unauthenticated connection may only send a small Hello or proof.
    const size_t max_frame = c->established ? kMaxFrameSize : kMaxHelloSize;
    FrameBuffer frame;
    DropReason why = DropReason::kBadLength;
    auto taken = c->reader.TakeFrame(max_frame, DropReason::kHandshake, &frame, &why);
    if (taken == TcpFrameReader::Take::kFrame) {
      if (!OnFrame(c, std::move(frame))) return false;
      continue;
    }
    if (taken == TcpFrameReader::Take::kBad) {
      drops.Count(why);  // the stream can no longer be trusted to be in sync
      return false;
    }
    // A short read means the socket is probably empty: skip the read() that would say EAGAIN.
    if (drained) return true;
    switch (c->reader.FillFrom(c->fd, max_frame)) {
      case TcpFrameReader::Fill::kFull:
        break;
      case TcpFrameReader::Fill::kShort:
        drained = true;
        break;
      case TcpFrameReader::Fill::kWouldBlock:
        return true;
      case TcpFrameReader::Fill::kClosed:
        if (c->reader.mid_frame()) drops.Count(DropReason::kTruncated);  // discard the part
        return false;
    }
  }
}

bool TcpTransport::Impl::OnFrame(TcpConn* c, FrameBuffer frame) {
  if (!c->established) {
    return c->session == nullptr ? OnHello(c, std::move(frame)) : OnProof(c, std::move(frame));
  }
  if (c->replaced) {
    drops.Count(DropReason::kTruncated);  // lost with the connection it was written to
    return false;
  }
  size_t size = frame.size();
  DropReason why = DropReason::kBadBody;
  auto message = c->session->Decode(std::move(frame), &why);
  if (!message.ok()) {
    drops.Count(why);
    // A replay or a bad body is dropped alone; anything failing authentication means the
    // stream is forged or out of sync, so the link is reset.
    return why == DropReason::kReplay || why == DropReason::kBadBody;
  }
  frames_received.fetch_add(1);
  bytes_received.fetch_add(size);
  queue.Push(*std::move(message));
  return true;
}

// Handshake, three steps: dialler Hello -> acceptor Hello -> dialler proof (a Heartbeat under
// the new session key, seq 1). The acceptor installs the link only after the proof, so a Hello
// recorded and replayed by someone without the cluster key cannot displace the live link.
bool TcpTransport::Impl::OnHello(TcpConn* c, FrameBuffer frame) {
  DropReason why = DropReason::kHandshake;
  auto hello = ParseHelloFrame(opts.cluster_key, frame.span(), opts.self, &why);
  if (!hello.ok()) {
    drops.Count(why);
    return false;
  }
  TcpPeer* peer = FindPeer(hello->node);
  if (peer == nullptr || hello->node == opts.self) {
    drops.Count(DropReason::kUnknownPeer);
    return false;
  }
  if (c->dialled) {
    if (hello->node != c->peer) {
      drops.Count(DropReason::kHandshake);
      return false;
    }
  } else {
    // Accepting side: answer only an authenticated Hello, so a wrong-key peer learns nothing.
    c->peer = hello->node;
    RandomBytes(absl::MakeSpan(c->nonce));
    {
      // Counted before the reply leaves: the dialler counts the link as up as soon as it has
      // our Hello, and a Send here must then wait for the proof rather than fail.
      absl::MutexLock lock(&peer->mu);
      ++peer->pending_proofs;
      c->awaiting_proof = true;
    }
    std::vector<uint8_t> reply = BuildHelloFrame(opts.cluster_key, opts.self, c->peer, c->nonce);
    iovec iov{reply.data(), reply.size()};
    if (!WriteAll(c->fd, &iov, 1, kDialTimeout).ok()) return false;
  }
  c->session = std::make_shared<PeerSession>(
      PeerSession::FromHandshake(opts.cluster_key, opts.self, c->nonce, *hello));
  if (!c->dialled) return true;  // wait for the dialler's proof
  capnp::MallocMessageBuilder proof;
  proof.initRoot<schema::Message>().initHeartbeat().setNodeId(opts.self);
  FlatMessage flat(proof);
  EncodedFrame encoded;
  if (!c->session->Encode(flat.Frame(), &encoded).ok()) return false;
  iovec iov[4];
  int n = encoded.ToIovec(iov);
  if (!WriteAll(c->fd, iov, n, kDialTimeout).ok()) return false;
  Install(c, peer);
  return true;
}

bool TcpTransport::Impl::OnProof(TcpConn* c, FrameBuffer frame) {
  DropReason why = DropReason::kHandshake;
  auto proof = c->session->Decode(std::move(frame), &why);
  if (!proof.ok() || proof->type() != schema::Message::HEARTBEAT || proof->sequence() != 1) {
    drops.Count(proof.ok() ? DropReason::kHandshake : why);
    return false;
  }
  TcpPeer* peer = FindPeer(c->peer);
  if (peer == nullptr) return false;
  Install(c, peer);
  return true;
}

void TcpTransport::Impl::Install(TcpConn* c, TcpPeer* peer) {
  c->established = true;
  std::shared_ptr<TcpConn> self_ref = conns_[c->fd];
  std::shared_ptr<TcpConn> old;
  {
    absl::MutexLock lock(&peer->mu);
    old = std::move(peer->conn);
    peer->conn = self_ref;
    if (c->awaiting_proof) --peer->pending_proofs;
    c->awaiting_proof = false;
    peer->dialing = false;
    peer->backoff = opts.reconnect_min;
  }
  // A newer connection from the same peer (it restarted, or saw this one break) replaces the
  // old one. Bytes still queued on the old socket are not delivered: they would arrive after
  // frames of the new connection and break per-peer order (README: delivery contract).
  if (old != nullptr) {
    old->replaced = true;
    ::shutdown(old->fd, SHUT_RDWR);
  }
  connects.fetch_add(1);
}

absl::Status TcpTransport::Impl::Send(NodeId dst, const OutgoingFrame& frame) {
  if (stop.load()) return absl::CancelledError("fabric transport closed");
  TcpPeer* peer = dst == opts.self ? nullptr : FindPeer(dst);
  if (peer == nullptr) {
    return absl::NotFoundError(absl::StrCat("node ", dst, " is not a configured fabric peer"));
  }
  absl::MutexLock lock(&peer->mu);
  if (peer->conn == nullptr && peer->pending_proofs > 0) {
    auto settled = [peer]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(peer->mu) {
      return peer->conn != nullptr || peer->pending_proofs == 0;
    };
    peer->mu.AwaitWithTimeout(absl::Condition(&settled), kProofWait);
  }
  std::shared_ptr<TcpConn> conn = peer->conn;
  if (conn == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("no fabric link to node ", dst, " (", peer->address, ") yet; retry"));
  }
  EncodedFrame encoded;
  absl::Status s = conn->session->Encode(frame, &encoded);
  if (!s.ok()) return s;
  iovec iov[4];
  int n = encoded.ToIovec(iov);
  s = WriteAll(conn->fd, iov, n, kSendTimeout);
  if (!s.ok()) {
    // Part of a frame may be on the wire: this stream is unusable. The receive thread sees
    // the shutdown, cleans up and the link is re-established.
    ::shutdown(conn->fd, SHUT_RDWR);
    peer->conn.reset();
    return s;
  }
  frames_sent.fetch_add(1);
  bytes_sent.fetch_add(encoded.size());
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<TcpTransport>> TcpTransport::Create(TcpTransportOptions options) {
  if (absl::Status mac = CheckFrameMacSupport(); !mac.ok()) return mac;
  auto impl = std::make_unique<Impl>(std::move(options));
  absl::Status s = impl->Start();
  if (!s.ok()) return s;
  return std::unique_ptr<TcpTransport>(new TcpTransport(std::move(impl)));
}

TcpTransport::TcpTransport(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TcpTransport::~TcpTransport() { Close(); }

int TcpTransport::listen_port() const { return LocalPort(impl_->listen_fd); }

void TcpTransport::SetPeerAddress(NodeId peer, const std::string& address) {
  impl_->AddPeer(peer, address);
  impl_->WakeDialer();
}

absl::Status TcpTransport::WaitForPeer(NodeId id, absl::Duration timeout) {
  TcpPeer* peer = impl_->FindPeer(id);
  if (peer == nullptr) return absl::NotFoundError(absl::StrCat("node ", id, " is not a peer"));
  absl::MutexLock lock(&peer->mu);
  auto up = [peer]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(peer->mu) { return peer->conn != nullptr; };
  if (!peer->mu.AwaitWithTimeout(absl::Condition(&up), timeout)) {
    return absl::DeadlineExceededError(
        absl::StrCat("no fabric link to node ", id, " at ", peer->address, " within ",
                     absl::FormatDuration(timeout), "; is it running, with the same key?"));
  }
  return absl::OkStatus();
}

NodeId TcpTransport::self() const { return impl_->opts.self; }

absl::Status TcpTransport::SendFrame(NodeId dst, const OutgoingFrame& frame) {
  return impl_->Send(dst, frame);
}

absl::StatusOr<ReceivedMessage> TcpTransport::Receive(absl::Duration timeout) {
  return impl_->Receive(timeout);
}

void TcpTransport::Close() { impl_->Shutdown(); }

TransportStats TcpTransport::GetStats() const {
  TransportStats s;
  s.frames_sent = impl_->frames_sent.load();
  s.frames_received = impl_->frames_received.load();
  s.bytes_sent = impl_->bytes_sent.load();
  s.bytes_received = impl_->bytes_received.load();
  s.connects = impl_->connects.load();
  s.disconnects = impl_->disconnects.load();
  s.drops = impl_->drops.Snapshot();
  return s;
}

}  // namespace amalgam::fabric
