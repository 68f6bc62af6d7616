#include "directory/node_cache.h"

#include <algorithm>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_format.h"
#include "directory/fault_injection.h"

namespace amalgam::directory {

namespace {
#ifdef AMALGAM_DIRECTORY_FAULT_INJECTION
bool CopyOutBeforeProtect() { return InjectedBugForTest() == InjectedBug::kCopyOutBeforeProtect; }
#else
constexpr bool CopyOutBeforeProtect() { return false; }
#endif

Action Simple(ActionType type, PageNumber page) {
  Action a;
  a.type = type;
  a.page = page;
  return a;
}

Action Send(const Message& m) {
  Action a;
  a.type = ActionType::kSend;
  a.page = m.page;
  a.message = m;
  return a;
}
// How an owner gives a Modified page back (downgrade, hand-over, eviction). The order is what
// keeps guest stores from being lost or read stale:
//  1. write-protect: from here on a guest store faults instead of landing;
//  2. copy out: the copy now holds every store that ever landed;
//  3. drop (hand-over/eviction): no local read can see the old copy once another node may write;
//  4. send the writeback: only now may the home let another node write.
void AppendGiveBack(PageNumber page, bool drop, const Message& wb, std::vector<Action>* out) {
  if (CopyOutBeforeProtect()) {
    out->push_back(Simple(ActionType::kCopyOut, page));
    out->push_back(Simple(ActionType::kWriteProtect, page));
  } else {
    out->push_back(Simple(ActionType::kWriteProtect, page));
    out->push_back(Simple(ActionType::kCopyOut, page));
  }
  if (drop) out->push_back(Simple(ActionType::kDropPage, page));
  out->push_back(Send(wb));
}
}  // namespace

const char* ToString(NodePageState s) {
  switch (s) {
    case NodePageState::kInvalid:
      return "I";
    case NodePageState::kShared:
      return "S";
    case NodePageState::kModified:
      return "M";
    case NodePageState::kInvalidToShared:
      return "IS";
    case NodePageState::kInvalidToModified:
      return "IM";
    case NodePageState::kSharedToModified:
      return "SM";
  }
  return "?";
}

NodePageState NodeCache::StateOf(PageNumber page) const {
  auto it = pages_.find(page);
  return it == pages_.end() ? NodePageState::kInvalid : it->second.state;
}

void NodeCache::Set(PageNumber page, Entry e) {
  if (e.state == NodePageState::kInvalid) {
    pages_.erase(page);
  } else {
    pages_[page] = e;
  }
}

absl::Status NodeCache::OnFault(PageNumber page, Access access, std::vector<Action>* out) {
  absl::StatusOr<NodeId> home = homes_->HomeOf(page);
  if (!home.ok()) return home.status();
  Entry e;
  if (auto it = pages_.find(page); it != pages_.end()) e = it->second;

  Message req;
  req.type = MessageType::kPageRequest;
  req.from = self_;
  req.requester = self_;
  req.to = *home;
  req.page = page;
  req.access = access;
  switch (e.state) {
    case NodePageState::kInvalid:
      req.req_id = next_req_id_++;
      Set(page, {access == Access::kRead ? NodePageState::kInvalidToShared
                                         : NodePageState::kInvalidToModified,
                 req.req_id});
      out->push_back(Send(req));
      return absl::OkStatus();
    case NodePageState::kShared:
      if (access == Access::kRead) {  // resolved meanwhile (another vCPU's fault): just retry
        out->push_back(Simple(ActionType::kWakeVcpus, page));
        return absl::OkStatus();
      }
      req.req_id = next_req_id_++;
      req.have_copy = true;
      e.state = NodePageState::kSharedToModified;  // keeps a hold and a deferred recall
      e.req_id = req.req_id;
      Set(page, e);
      out->push_back(Send(req));
      return absl::OkStatus();
    case NodePageState::kModified:
      out->push_back(Simple(ActionType::kWakeVcpus, page));
      return absl::OkStatus();
    case NodePageState::kSharedToModified:
      if (access == Access::kRead) {  // still mapped read-only: spurious
        out->push_back(Simple(ActionType::kWakeVcpus, page));
      }
      return absl::OkStatus();
    case NodePageState::kInvalidToShared:
    case NodePageState::kInvalidToModified:
      // Joins the outstanding request. A write waiting on a Shared grant faults again after
      // the wake-up and then asks for the upgrade.
      return absl::OkStatus();
  }
  return absl::InternalError("corrupt node page state");
}

absl::Status NodeCache::Evict(PageNumber page, std::vector<Action>* out) {
  absl::StatusOr<NodeId> home = homes_->HomeOf(page);
  if (!home.ok()) return home.status();
  NodePageState s = StateOf(page);
  if (IsHeld(page)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "cannot evict page %u on node %u: it is held after a grant until ReleaseHold", page,
        self_));
  }
  if (s == NodePageState::kShared) {
    // Read-only copy: drop silently; the home's sharer set may now be a superset, which is
    // safe (an Invalidate to a node without a copy is simply acked).
    pages_.erase(page);
    out->push_back(Simple(ActionType::kDropPage, page));
    return absl::OkStatus();
  }
  if (s != NodePageState::kModified) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "cannot evict page %u on node %u: it is %s; only Shared or Modified pages are resident "
        "and settled",
        page, self_, ToString(s)));
  }
  Message wb;
  wb.type = MessageType::kWriteback;
  wb.from = self_;
  wb.to = *home;
  wb.page = page;
  wb.req_id = 0;
  wb.state = PageState::kInvalid;
  wb.has_data = true;
  pages_.erase(page);
  AppendGiveBack(page, /*drop=*/true, wb, out);
  return absl::OkStatus();
}

absl::Status NodeCache::CheckFromHome(const Message& m, NodeId* home) const {
  if (m.to != self_) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s is addressed to node %u, this is node %u", ToString(m), m.to, self_));
  }
  absl::StatusOr<NodeId> h = homes_->HomeOf(m.page);
  if (!h.ok()) return h.status();
  if (m.from != *h) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s comes from node %u but page %u's home is node %u", ToString(m), m.from, m.page, *h));
  }
  *home = *h;
  return absl::OkStatus();
}

absl::Status NodeCache::OnGrant(const Message& m, Entry* e, std::vector<Action>* out) {
  bool ok = false;
  bool payload = m.has_data || m.zero_fill;
  if (m.req_id == e->req_id && !(m.has_data && m.zero_fill)) {
    switch (e->state) {
      case NodePageState::kInvalidToShared:
        ok = m.state == PageState::kShared && payload;
        break;
      case NodePageState::kInvalidToModified:
        ok = m.state == PageState::kModified && payload;
        break;
      case NodePageState::kSharedToModified:
        ok = m.state == PageState::kModified && !payload;  // upgrade in place
        break;
      default:
        break;
    }
  }
  if (!ok) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "stale or mismatched grant on node %u: %s, but the page is %s waiting for req %u", self_,
        ToString(m), ToString(e->state), e->req_id));
  }
  if (e->state == NodePageState::kSharedToModified) {
    out->push_back(Simple(ActionType::kMakeWritable, m.page));
  } else {
    Action install = Simple(ActionType::kInstallPage, m.page);
    install.writable = m.state == PageState::kModified;
    install.zero_fill = m.zero_fill;
    out->push_back(install);
  }
  out->push_back(Simple(ActionType::kWakeVcpus, m.page));
  Entry granted;
  granted.state =
      m.state == PageState::kModified ? NodePageState::kModified : NodePageState::kShared;
  granted.held = true;
  granted.has_deferred = e->has_deferred;
  granted.deferred = e->deferred;
  Set(m.page, granted);
  return absl::OkStatus();
}

absl::Status NodeCache::CheckRecall(const Message& m, const Entry& e) const {
  if (e.has_deferred) {
    return absl::FailedPreconditionError(
        absl::StrFormat("node %u got %s while a recall of page %u is already deferred", self_,
                        ToString(m), m.page));
  }
  if (m.type == MessageType::kInvalidate && e.state == NodePageState::kModified) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "node %u owns page %u (Modified) but got %s; owners are recalled with Downgrade", self_,
        m.page, ToString(m)));
  }
  if (m.type == MessageType::kDowngrade &&
      (e.state == NodePageState::kShared || e.state == NodePageState::kSharedToModified)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "node %u holds page %u only Shared (%s) but got %s; only the owner is recalled", self_,
        m.page, ToString(e.state), ToString(m)));
  }
  return absl::OkStatus();
}

void NodeCache::Recall(const Message& m, NodeId home, Entry e, std::vector<Action>* out) {
  if (m.type == MessageType::kInvalidate) {
    // Any state but M: there may be no copy any more (silent eviction); ack anyway.
    if (e.state == NodePageState::kShared || e.state == NodePageState::kSharedToModified) {
      out->push_back(Simple(ActionType::kDropPage, m.page));
      // An upgrade that crossed this invalidation now needs the data: the grant will carry it.
      e.state = e.state == NodePageState::kShared ? NodePageState::kInvalid
                                                  : NodePageState::kInvalidToModified;
      Set(m.page, e);
    }
    Message ack;
    ack.type = MessageType::kInvalidateAck;
    ack.from = self_;
    ack.to = home;
    ack.page = m.page;
    ack.req_id = m.req_id;
    out->push_back(Send(ack));
    return;
  }
  // kDowngrade.
  if (e.state != NodePageState::kModified) {
    // This node wrote the page back on eviction while the home was recalling it; the home
    // takes that writeback as the answer. Nothing to do.
    ++stale_recalls_;
    return;
  }
  Message wb;
  wb.type = MessageType::kWriteback;
  wb.from = self_;
  wb.to = home;
  wb.page = m.page;
  wb.req_id = m.req_id;
  wb.state = m.drop ? PageState::kInvalid : PageState::kShared;
  wb.has_data = true;
  AppendGiveBack(m.page, m.drop, wb, out);
  Set(m.page, {m.drop ? NodePageState::kInvalid : NodePageState::kShared, 0});
}

absl::Status NodeCache::OnMessage(const Message& m, std::vector<Action>* out) {
  NodeId home;
  if (absl::Status s = CheckFromHome(m, &home); !s.ok()) return s;
  Entry e;
  if (auto it = pages_.find(m.page); it != pages_.end()) e = it->second;

  switch (m.type) {
    case MessageType::kPageGrant:
      return OnGrant(m, &e, out);
    case MessageType::kInvalidate:
    case MessageType::kDowngrade:
      if (absl::Status s = CheckRecall(m, e); !s.ok()) return s;
      if (e.held) {
        e.has_deferred = true;
        e.deferred = m;
        Set(m.page, e);
        return absl::OkStatus();
      }
      Recall(m, home, e, out);
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s is a message for a home directory, not for a node cache", ToString(m)));
  }
}

bool NodeCache::IsHeld(PageNumber page) const {
  auto it = pages_.find(page);
  return it != pages_.end() && it->second.held;
}

absl::Status NodeCache::ReleaseHold(PageNumber page, std::vector<Action>* out) {
  auto it = pages_.find(page);
  if (it == pages_.end() || !it->second.held) {
    return absl::FailedPreconditionError(
        absl::StrFormat("page %u is not held on node %u; release only after a grant", page, self_));
  }
  Entry e = it->second;
  e.held = false;
  if (!e.has_deferred) {
    Set(page, e);
    return absl::OkStatus();
  }
  Message m = e.deferred;
  e.has_deferred = false;
  e.deferred = Message{};
  Set(page, e);
  Recall(m, m.from, e, out);
  return absl::OkStatus();
}

void NodeCache::EncodeState(std::string* out) const {
  absl::InlinedVector<std::pair<PageNumber, Entry>, 8> v(pages_.begin(), pages_.end());
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  auto put = [out](uint64_t x) { out->append(reinterpret_cast<const char*>(&x), sizeof(x)); };
  put(next_req_id_);
  put(v.size());
  for (const auto& [page, e] : v) {
    put(page);
    put(static_cast<uint64_t>(e.state));
    put(e.req_id);
    put(uint64_t{e.held} | uint64_t{e.has_deferred} << 1);
    if (e.has_deferred) {
      put(static_cast<uint64_t>(e.deferred.type) | uint64_t{e.deferred.drop} << 8);
      put(e.deferred.req_id);
      put(e.deferred.from);
    }
  }
}

}  // namespace amalgam::directory
