#include "fabric/peer_liveness.h"

#include <capnp/message.h>
#include <time.h>

#include "absl/strings/str_format.h"
#include "fabric/schema/messages.capnp.h"

namespace amalgam::fabric {
namespace {

int64_t MonotonicClockNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::string Seconds(int64_t ns) { return absl::StrFormat("%.1f s", ns / 1e9); }

}  // namespace

PeerLivenessMonitor::PeerLivenessMonitor(Transport* transport, const std::vector<NodeId>& peers,
                                         LivenessOptions options, LostCallback on_lost)
    : transport_(transport),
      options_(std::move(options)),
      on_lost_(std::move(on_lost)),
      started_ns_(Now()) {
  for (NodeId id : peers) {
    if (id != transport_->self()) peers_.emplace(id, std::make_unique<Peer>());
  }
}

PeerLivenessMonitor::~PeerLivenessMonitor() { Stop(); }

int64_t PeerLivenessMonitor::Now() const {
  return options_.clock ? options_.clock() : MonotonicClockNs();
}

void PeerLivenessMonitor::Start() {
  absl::MutexLock l(&mu_);
  if (timer_.joinable() || stop_) return;
  timer_ = std::thread([this] { TimerLoop(); });
}

void PeerLivenessMonitor::Stop() {
  {
    absl::MutexLock l(&mu_);
    stop_ = true;
  }
  if (timer_.joinable() && timer_.get_id() != std::this_thread::get_id()) timer_.join();
}

void PeerLivenessMonitor::TimerLoop() {
  while (true) {
    Tick();
    absl::MutexLock l(&mu_);
    if (mu_.AwaitWithTimeout(absl::Condition(&stop_), options_.interval)) return;
  }
}

void PeerLivenessMonitor::OnFrameFrom(NodeId node) {
  auto it = peers_.find(node);
  if (it != peers_.end()) it->second->last_heard_ns.store(Now(), std::memory_order_relaxed);
}

bool PeerLivenessMonitor::Observe(const ReceivedMessage& message) {
  OnFrameFrom(message.source());
  return message.type() == schema::Message::HEARTBEAT;
}

void PeerLivenessMonitor::Tick() {
  absl::MutexLock tick(&tick_mu_);
  const int64_t now = Now();
  capnp::MallocMessageBuilder builder;
  auto hb = builder.initRoot<schema::Message>().initHeartbeat();
  hb.setNodeId(transport_->self());
  hb.setEpoch(options_.epoch);
  hb.setSentNs(static_cast<uint64_t>(now));
  FlatMessage flat(builder);

  std::vector<PeerLoss> fresh;
  for (auto& [id, peer] : peers_) {
    {
      absl::MutexLock l(&mu_);
      if (peer->lost) continue;
    }
    // Outside mu_: a DPDK send may wait for window room.
    absl::Status sent = transport_->SendFrame(id, flat.Frame());
    if (sent.ok()) heartbeats_sent_.fetch_add(1, std::memory_order_relaxed);
    const int64_t heard = peer->last_heard_ns.load(std::memory_order_relaxed);

    absl::MutexLock l(&mu_);
    if (absl::IsUnavailable(sent)) {
      if (peer->unavailable_since_ns < 0) peer->unavailable_since_ns = now;
      peer->unavailable_why = std::string(sent.message());
    } else {
      peer->unavailable_since_ns = -1;
    }
    std::string reason;
    if (heard < 0) {
      if (now - started_ns_ >= absl::ToInt64Nanoseconds(options_.startup_timeout)) {
        reason =
            absl::StrFormat("node %u: never heard from within %s", id, Seconds(now - started_ns_));
      }
    } else if (now - heard >= absl::ToInt64Nanoseconds(options_.timeout)) {
      reason = absl::StrFormat("node %u: no frame for %s", id, Seconds(now - heard));
    } else if (peer->unavailable_since_ns >= 0 && heard < peer->unavailable_since_ns &&
               now - peer->unavailable_since_ns >=
                   absl::ToInt64Nanoseconds(options_.link_down_grace)) {
      // Silent since the link went down, and it stayed down: the peer closed it (or died).
      reason = absl::StrFormat("node %u: connection closed (no link for %s: %s)", id,
                               Seconds(now - peer->unavailable_since_ns), peer->unavailable_why);
    }
    if (reason.empty()) continue;
    peer->lost = true;
    losses_.push_back(PeerLoss{id, reason});
    fresh.push_back(losses_.back());
  }
  // No lock held: the callback may call IsLost/Losses or stop the guest.
  if (on_lost_) {
    for (const PeerLoss& loss : fresh) on_lost_(loss);
  }
}

bool PeerLivenessMonitor::IsLost(NodeId node) const {
  auto it = peers_.find(node);
  if (it == peers_.end()) return false;
  absl::MutexLock l(&mu_);
  return it->second->lost;
}

std::vector<PeerLoss> PeerLivenessMonitor::Losses() const {
  absl::MutexLock l(&mu_);
  return losses_;
}

}  // namespace amalgam::fabric
