#include "directory/home_directory.h"

#include <algorithm>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_format.h"
#include "directory/fault_injection.h"

namespace amalgam::directory {

namespace {
#ifdef AMALGAM_DIRECTORY_FAULT_INJECTION
bool SkipOneInvalidate() { return InjectedBugForTest() == InjectedBug::kSkipOneInvalidate; }
#else
constexpr bool SkipOneInvalidate() { return false; }
#endif

uint64_t Bit(NodeId n) { return uint64_t{1} << n; }

void SendTo(std::vector<Action>* out, const Message& m) {
  Action a;
  a.type = ActionType::kSend;
  a.page = m.page;
  a.message = m;
  out->push_back(a);
}
}  // namespace

HomeDirectory::PageView HomeDirectory::Lookup(PageNumber page) const {
  PageView v;
  auto it = entries_.find(page);
  if (it == entries_.end()) return v;
  const Entry& e = it->second;
  v.state = e.state;
  v.owner = e.owner;
  v.sharers = e.sharers;
  v.written = e.written;
  v.busy = e.txn.wait != Wait::kNone;
  v.queued = e.queue.size();
  return v;
}

absl::Status HomeDirectory::CheckRequest(const Message& m, const Entry& e) const {
  if (m.requester != m.from) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: requester %u differs from sender %u; nodes request only for themselves", ToString(m),
        m.requester, m.from));
  }
  if (m.have_copy && m.access == Access::kRead) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: a read request cannot claim to have a copy already", ToString(m)));
  }
  bool active = e.txn.wait != Wait::kNone && e.txn.requester == m.from;
  bool queued = std::any_of(e.queue.begin(), e.queue.end(),
                            [&](const Message& q) { return q.from == m.from; });
  if (active || queued) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: node %u already has a request for page %u in progress (duplicate request)",
        ToString(m), m.from, m.page));
  }
  if (e.state == PageState::kModified && e.owner == m.from) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: node %u owns page %u (Modified) and cannot miss on it", ToString(m), m.from, m.page));
  }
  return absl::OkStatus();
}

void HomeDirectory::Grant(Entry* e, PageNumber page, NodeId to, uint64_t req_id, PageState state,
                          bool data_needed, std::vector<Action>* out) {
  Message g;
  g.type = MessageType::kPageGrant;
  g.from = self_;
  g.to = to;
  g.page = page;
  g.req_id = req_id;
  g.state = state;
  g.has_data = data_needed && e->written;
  g.zero_fill = data_needed && !e->written;  // never written: no 4 KiB on the wire
  SendTo(out, g);
}

void HomeDirectory::Process(const Message& req, Entry* e, std::vector<Action>* out) {
  const NodeId x = req.from;
  if (e->state == PageState::kModified) {
    // The owner has the only valid copy: recall it (downgrade for a read, hand-over for a
    // write) and finish when its writeback arrives.
    Message d;
    d.type = MessageType::kDowngrade;
    d.from = self_;
    d.to = e->owner;
    d.page = req.page;
    d.req_id = req.req_id;
    d.requester = x;
    d.drop = req.access == Access::kWrite;
    e->txn = Txn{Wait::kWriteback, x, req.req_id, req.access, req.have_copy, d.drop, 0};
    SendTo(out, d);
    return;
  }
  if (req.access == Access::kRead) {
    Grant(e, req.page, x, req.req_id, PageState::kShared, /*data_needed=*/true, out);
    e->state = PageState::kShared;
    e->sharers |= Bit(x);
    return;
  }
  uint64_t others = e->sharers & ~Bit(x);
  if (SkipOneInvalidate() && others != 0) {
    others &= ~Bit(63 - __builtin_clzll(others));  // injected bug: forget the highest sharer
    e->sharers &= ~Bit(63 - __builtin_clzll(e->sharers & ~Bit(x)));
  }
  if (others == 0) {
    bool keeps_copy = (e->sharers & Bit(x)) && req.have_copy;
    Grant(e, req.page, x, req.req_id, PageState::kModified, !keeps_copy, out);
    e->state = PageState::kModified;
    e->owner = x;
    e->sharers = 0;
    return;
  }
  e->txn = Txn{Wait::kAcks, x, req.req_id, req.access, req.have_copy, false, others};
  for (NodeId n = 0; n < kMaxNodes; ++n) {
    if (!(others & Bit(n))) continue;
    Message inv;
    inv.type = MessageType::kInvalidate;
    inv.from = self_;
    inv.to = n;
    inv.page = req.page;
    inv.req_id = req.req_id;
    inv.requester = x;
    SendTo(out, inv);
  }
}

void HomeDirectory::Drain(PageNumber page, Entry* e, std::vector<Action>* out) {
  while (e->txn.wait == Wait::kNone && !e->queue.empty()) {
    Message next = e->queue.front();
    e->queue.erase(e->queue.begin());
    Process(next, e, out);
  }
}

void HomeDirectory::Release(PageNumber page, const Entry& e) {
  if (e.state == PageState::kInvalid && !e.written && e.txn.wait == Wait::kNone &&
      e.queue.empty()) {
    entries_.erase(page);
  }
}

absl::Status HomeDirectory::OnMessage(const Message& m, std::vector<Action>* out) {
  if (m.to != self_) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s is addressed to node %u, this is node %u", ToString(m), m.to, self_));
  }
  absl::StatusOr<NodeId> home = homes_->HomeOf(m.page);
  if (!home.ok()) return home.status();
  if (*home != self_) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: page %u is homed at node %u, not here (node %u)", ToString(m), m.page, *home, self_));
  }
  if (m.from >= homes_->num_nodes()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s comes from node %u but the cluster has %u nodes", ToString(m), m.from,
                        homes_->num_nodes()));
  }
  static const Entry kIdle;
  auto it = entries_.find(m.page);
  const Entry& cur = it == entries_.end() ? kIdle : it->second;

  switch (m.type) {
    case MessageType::kPageRequest: {
      if (absl::Status s = CheckRequest(m, cur); !s.ok()) return s;
      Entry& e = entries_[m.page];
      if (e.txn.wait != Wait::kNone) {
        e.queue.push_back(m);  // serialized: served when the transaction in flight completes
        return absl::OkStatus();
      }
      Process(m, &e, out);
      Release(m.page, e);
      return absl::OkStatus();
    }

    case MessageType::kInvalidateAck: {
      if (cur.txn.wait != Wait::kAcks || !(cur.txn.pending_acks & Bit(m.from)) ||
          cur.txn.req_id != m.req_id) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "%s: page %u is not waiting for an invalidate ack from node %u for req %u "
            "(duplicate, stale or unsolicited ack)",
            ToString(m), m.page, m.from, m.req_id));
      }
      Entry& e = it->second;
      e.txn.pending_acks &= ~Bit(m.from);
      e.sharers &= ~Bit(m.from);
      if (e.txn.pending_acks != 0) return absl::OkStatus();
      const Txn t = e.txn;
      e.txn = Txn{};
      bool keeps_copy = (e.sharers & Bit(t.requester)) && t.have_copy;
      Grant(&e, m.page, t.requester, t.req_id, PageState::kModified, !keeps_copy, out);
      e.state = PageState::kModified;
      e.owner = t.requester;
      e.sharers = 0;
      Drain(m.page, &e, out);
      return absl::OkStatus();
    }

    case MessageType::kWriteback: {
      bool owner = cur.state == PageState::kModified && cur.owner == m.from;
      bool recalled = owner && cur.txn.wait == Wait::kWriteback;
      // An eviction (req 0, keeps Invalid) is fine at any time from the owner; a reply to a
      // recall must match the transaction and keep what the recall asked for.
      bool eviction = m.req_id == 0 && m.state == PageState::kInvalid;
      bool reply = recalled && m.req_id == cur.txn.req_id &&
                   m.state == (cur.txn.drop ? PageState::kInvalid : PageState::kShared);
      if (!owner || !(eviction || reply) || !m.has_data) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "%s: node %u is not the owner of page %u with a writeback due (page is %s, owner "
            "%d); the writeback must carry data",
            ToString(m), m.from, m.page, ToString(cur.state),
            cur.owner == kNoNode ? -1 : static_cast<int>(cur.owner)));
      }
      Entry& e = it->second;
      Action store;
      store.type = ActionType::kStoreHomeCopy;
      store.page = m.page;
      out->push_back(store);
      e.written = true;
      e.owner = kNoNode;
      e.sharers = 0;
      e.state = PageState::kInvalid;
      if (recalled) {
        const Txn t = e.txn;
        e.txn = Txn{};
        if (t.access == Access::kRead) {
          e.state = PageState::kShared;
          e.sharers = Bit(t.requester) | (m.state == PageState::kShared ? Bit(m.from) : 0);
          Grant(&e, m.page, t.requester, t.req_id, PageState::kShared, true, out);
        } else {
          e.state = PageState::kModified;
          e.owner = t.requester;
          Grant(&e, m.page, t.requester, t.req_id, PageState::kModified, true, out);
        }
        Drain(m.page, &e, out);
      }
      return absl::OkStatus();
    }

    default:
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s is a message for a node cache, not for a home directory", ToString(m)));
  }
}

absl::Status HomeDirectory::Seed(PageNumber page) {
  absl::StatusOr<NodeId> home = homes_->HomeOf(page);
  if (!home.ok()) return home.status();
  if (*home != self_) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "Seed: page %u is homed at node %u, not here (node %u)", page, *home, self_));
  }
  auto it = entries_.find(page);
  if (it != entries_.end()) {
    const Entry& e = it->second;
    if (e.state != PageState::kInvalid || e.txn.wait != Wait::kNone || !e.queue.empty()) {
      return absl::FailedPreconditionError(
          absl::StrFormat("Seed: page %u is already in use (%s); seed pages before the guest runs",
                          page, ToString(e.state)));
    }
  }
  entries_[page].written = true;
  return absl::OkStatus();
}

void HomeDirectory::EncodeState(std::string* out) const {
  absl::InlinedVector<std::pair<PageNumber, const Entry*>, 8> pages;
  for (const auto& [page, e] : entries_) pages.push_back({page, &e});
  std::sort(pages.begin(), pages.end());
  auto put = [out](uint64_t x) { out->append(reinterpret_cast<const char*>(&x), sizeof(x)); };
  put(pages.size());
  for (const auto& [p, entry] : pages) {
    const Entry& e = *entry;
    put(p);
    put(static_cast<uint64_t>(e.state) | uint64_t{e.written} << 8 |
        static_cast<uint64_t>(e.txn.wait) << 16 | static_cast<uint64_t>(e.txn.access) << 24 |
        uint64_t{e.txn.have_copy} << 32 | uint64_t{e.txn.drop} << 40);
    put(e.owner);
    put(e.sharers);
    put(e.txn.requester);
    put(e.txn.req_id);
    put(e.txn.pending_acks);
    put(e.queue.size());
    for (const Message& q : e.queue) {
      put(q.from);
      put(q.req_id);
      put(static_cast<uint64_t>(q.access) | uint64_t{q.have_copy} << 8);
    }
  }
}

}  // namespace amalgam::directory
