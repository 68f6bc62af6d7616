// NodeRuntime's loop-thread work: feeding the coherence state machines and performing their
// actions (directory/README.md, "Actions -> userfaultfd").
#include <cstring>

#include "absl/strings/str_cat.h"
#include "vmm/node/runtime_impl.h"

namespace amalgam::vmm::node {

namespace {
constexpr uint64_t kPage = 4096;
using directory::Action;
using directory::ActionType;
using directory::MessageType;
using directory::NodePageState;

memory::GuestAddress Gpa(directory::PageNumber page) { return memory::GuestAddress(page * kPage); }
}  // namespace

bool NodeRuntime::Impl::HomeWritten(directory::PageNumber page) const {
  return store_->Page(page) != nullptr && home_.Lookup(page).written;
}

void NodeRuntime::Impl::Account(directory::PageNumber page, NodePageState before,
                                bool home_written) {
  NodePageState after = cache_.StateOf(page);
  bool written = HomeWritten(page);
  absl::MutexLock l(&metrics_mu_);
  if (before != after) {
    if (before != NodePageState::kInvalid) cache_pages_[static_cast<size_t>(before)]--;
    if (after != NodePageState::kInvalid) cache_pages_[static_cast<size_t>(after)]++;
  }
  if (written && !home_written) home_written_++;
}

void NodeRuntime::Impl::HandleFault(const Fault& f) {
  if (opt_.trace) {
    Trace(TracePoint::kFaultRead, f.page, f.read_ns);
    Trace(TracePoint::kFaultLoop, f.page, NowNs());
  }
  NodePageState before = cache_.StateOf(f.page);
  bool written = HomeWritten(f.page);
  absl::StatusOr<directory::NodeId> home = opt_.homes->HomeOf(f.page);
  Count(home.ok() && *home == opt_.self ? "faults_local_home" : "faults_remote_home");
  std::vector<Action> actions;
  if (absl::Status s = cache_.OnFault(f.page, f.access, &actions); !s.ok()) {
    Error(absl::StrCat("fault on page ", f.page), s);
    return;
  }
  if (actions.empty()) Count("faults_joined");
  Execute(actions, {});
  Account(f.page, before, written);
}

void NodeRuntime::Impl::HandleInbound(const Inbound& in) {
  const directory::Message& m = in.wire.message;
  if (opt_.trace) Trace(TracePoint::kInboundLoop, m.page, NowNs());
  NodePageState before = cache_.StateOf(m.page);
  bool written = HomeWritten(m.page);
  std::vector<Action> actions;
  absl::Status s;
  if (in.wire.seed) {
    uint8_t* dst = store_->Page(m.page);
    s = dst == nullptr
            ? absl::InvalidArgumentError(absl::StrCat("seed of page ", m.page, ", not homed here"))
            : home_.Seed(m.page);
    if (s.ok()) std::memcpy(dst, in.payload().data(), kPage);
  } else {
    bool to_home = m.type == MessageType::kPageRequest || m.type == MessageType::kInvalidateAck ||
                   m.type == MessageType::kWriteback;
    if (to_home) Count(absl::StrCat("home_", directory::ToString(m.type)));
    s = to_home ? home_.OnMessage(m, &actions) : cache_.OnMessage(m, &actions);
  }
  if (!s.ok()) {
    Error(absl::StrCat("message ", directory::ToString(m)), s);
    return;
  }
  Execute(actions, in.payload());
  Account(m.page, before, written);
}

void NodeRuntime::Impl::ArmHold(directory::PageNumber page) {
  int64_t deadline = NowNs() + absl::ToInt64Nanoseconds(opt_.hold_time);
  timers_.push_back(Timer{deadline, page});
  hold_deadline_[page] = deadline;
}

void NodeRuntime::Impl::ReleaseDueHolds(int64_t now_ns) {
  while (!timers_.empty() && timers_.front().deadline_ns <= now_ns) {
    Timer t = timers_.front();
    timers_.pop_front();
    auto it = hold_deadline_.find(t.page);
    if (it == hold_deadline_.end() || it->second != t.deadline_ns) continue;  // re-armed later
    hold_deadline_.erase(it);
    if (!cache_.IsHeld(t.page)) continue;
    NodePageState before = cache_.StateOf(t.page);
    bool written = HomeWritten(t.page);
    std::vector<Action> actions;
    if (absl::Status s = cache_.ReleaseHold(t.page, &actions); !s.ok()) {
      Error(absl::StrCat("release hold of page ", t.page), s);
      continue;
    }
    Count("holds_released");
    if (!actions.empty()) Count("recalls_deferred");
    Execute(actions, {});
    Account(t.page, before, written);
  }
}

void NodeRuntime::Impl::EvictOverCapacity() {
  if (opt_.local_capacity_pages == 0) return;
  // Oldest first (FIFO); a page that is held or has a request in flight goes to the back.
  size_t budget = resident_order_.size();
  while (resident_.size() > opt_.local_capacity_pages && budget-- > 0) {
    directory::PageNumber page = resident_order_.front();
    resident_order_.pop_front();
    if (!resident_.contains(page)) continue;  // dropped meanwhile
    NodePageState st = cache_.StateOf(page);
    if ((st != NodePageState::kShared && st != NodePageState::kModified) || cache_.IsHeld(page)) {
      resident_order_.push_back(page);
      continue;
    }
    bool written = HomeWritten(page);
    std::vector<Action> actions;
    if (absl::Status s = cache_.Evict(page, &actions); !s.ok()) {
      Error(absl::StrCat("evict page ", page), s);
      resident_order_.push_back(page);
      continue;
    }
    Count(st == NodePageState::kModified ? "evictions_modified" : "evictions_shared");
    Execute(actions, {});
    Account(page, st, written);
  }
}

void NodeRuntime::Impl::SendProtocol(const directory::Message& m,
                                     absl::Span<const uint8_t> payload) {
  WireMessage w;
  w.message = m;
  const char* type = WireTypeName(w);
  if (m.to == opt_.self) {  // to this node's own home or cache: no fabric, same order
    Inbound in;
    in.wire = w;
    in.local.assign(payload.begin(), payload.end());
    local_.push_back(std::move(in));
    Count(absl::StrCat("local_msgs_", type));
    return;
  }
  capnp::MallocMessageBuilder b;
  BuildWire(m, &b);
  fabric::FlatMessage flat(b);
  absl::Status s = opt_.transport->SendFrame(m.to, flat.Frame(payload));
  if (!s.ok()) {
    Error(absl::StrCat("send ", directory::ToString(m)), s);
    return;
  }
  Count(absl::StrCat("sent_msgs_", type));
  Count(absl::StrCat("sent_bytes_", type), flat.bytes().size() + payload.size());
}

void NodeRuntime::Impl::Execute(const std::vector<Action>& actions, absl::Span<const uint8_t> in) {
  alignas(64) uint8_t copy[kPage];
  bool copied = false;
  bool woken = false;
  for (const Action& a : actions) {
    absl::Status s;
    const bool needs_memory = a.type != ActionType::kSend && a.type != ActionType::kStoreHomeCopy;
    if (needs_memory && service_ == nullptr) {
      Error(absl::StrCat("action ", directory::ToString(a)),
            absl::FailedPreconditionError("this node maps no guest memory"));
      continue;
    }
    switch (a.type) {
      case ActionType::kSend: {
        absl::Span<const uint8_t> payload;
        if (a.message.has_data) {
          if (a.message.type == MessageType::kPageGrant) {
            const uint8_t* p = store_->Page(a.page);
            if (p == nullptr) {
              s = absl::InternalError("grant for a page without a home copy here");
              break;
            }
            payload = absl::MakeConstSpan(p, kPage);
          } else if (copied) {
            payload = absl::MakeConstSpan(copy, kPage);
          } else {
            s = absl::InternalError("writeback without a preceding copy-out");
            break;
          }
        }
        SendProtocol(a.message, payload);
        break;
      }
      case ActionType::kWriteProtect:
      case ActionType::kCopyOut:
        // Downgrade = write-protect, then copy. Once protected no store can land, so the copy
        // taken here is exactly what a later kCopyOut would read.
        if (!copied) s = service_->Downgrade(Gpa(a.page), absl::MakeSpan(copy, kPage));
        copied = s.ok();
        break;
      case ActionType::kInstallPage: {
        if (a.zero_fill) {
          s = a.writable ? service_->InstallZeroWritable(Gpa(a.page))
                         : service_->InstallZeroShared(Gpa(a.page));
        } else if (in.size() != kPage) {
          s = absl::InvalidArgumentError("grant with data but no 4 KiB payload");
        } else {
          s = a.writable ? service_->InstallWritable(Gpa(a.page), in)
                         : service_->InstallShared(Gpa(a.page), in);
        }
        if (s.ok()) {
          if (resident_.insert(a.page).second) resident_order_.push_back(a.page);
          woken = true;
          if (opt_.trace) Trace(TracePoint::kResolved, a.page, NowNs());
          ArmHold(a.page);
          Count(a.zero_fill ? "installs_zero" : "installs_data");
        }
        break;
      }
      case ActionType::kMakeWritable:
        s = service_->MakeWritable(Gpa(a.page));
        if (s.ok()) {
          woken = true;
          if (opt_.trace) Trace(TracePoint::kResolved, a.page, NowNs());
          ArmHold(a.page);
          Count("upgrades");
        }
        break;
      case ActionType::kDropPage:
        s = service_->Drop(Gpa(a.page), {});
        resident_.erase(a.page);
        Count("drops");
        break;
      case ActionType::kWakeVcpus:
        if (!woken) s = service_->Wake(Gpa(a.page));  // an install/upgrade already woke them
        break;
      case ActionType::kStoreHomeCopy: {
        uint8_t* dst = store_->Page(a.page);
        if (dst == nullptr || in.size() != kPage) {
          s = absl::InternalError("writeback data for a page not homed here, or no payload");
          break;
        }
        std::memcpy(dst, in.data(), kPage);
        Count("home_stores");
        break;
      }
    }
    if (!s.ok()) Error(absl::StrCat("action ", directory::ToString(a)), s);
  }
}

}  // namespace amalgam::vmm::node
