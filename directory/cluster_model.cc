#include "directory/cluster_model.h"

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace amalgam::directory::model_internal {

World ClusterModel::Initial() const {
  World w;
  for (NodeId n = 0; n < c_.nodes; ++n) {
    w.nodes.emplace_back(n, &homes_, c_.pages, c_.ops_per_node, c_.evictions_per_node);
    if (c_.ops_per_node == 0) w.nodes.back().vcpu = Vcpu::kDone;
  }
  w.channels.resize(c_.nodes * c_.nodes);
  w.last_write.assign(c_.pages, 0);  // never written: zeros
  return w;
}

void ClusterModel::Enabled(const World& w, std::vector<Step>* steps) const {
  steps->clear();
  const uint32_t n_nodes = c_.nodes;
  if (c_.reduce_invisible_steps) {
    for (uint32_t n = 0; n < n_nodes; ++n) {
      const NodeModel& nm = w.nodes[n];
      if (nm.next_action < nm.actions.size()) {
        if (Invisible(nm, nm.actions[nm.next_action])) {
          steps->push_back({StepKind::kRunAction, static_cast<uint8_t>(n), 0, 0});
          return;
        }
        continue;
      }
      // The hold timer fires as soon as the woken vCPU has retried. Firing later only delays
      // a deferred recall, which equals delivering that recall later (explored anyway: no
      // other message for the page can be in flight to this node while it is deferred).
      for (uint32_t p = 0; p < c_.pages; ++p) {
        if (nm.cache.IsHeld(p) && !(nm.vcpu == Vcpu::kWoken && nm.op_page == p)) {
          steps->push_back(
              {StepKind::kReleaseHold, static_cast<uint8_t>(n), static_cast<uint8_t>(p), 0});
          return;
        }
      }
    }
  }
  for (uint32_t n = 0; n < n_nodes; ++n) {
    const NodeModel& nm = w.nodes[n];
    uint8_t id = static_cast<uint8_t>(n);
    if (nm.next_action < nm.actions.size()) {
      steps->push_back({StepKind::kRunAction, id, 0, 0});
    } else {
      if (!nm.faults.empty()) steps->push_back({StepKind::kHandleFault, id, 0, 0});
      for (uint32_t src = 0; src < n_nodes; ++src) {
        if (!w.channels[src * n_nodes + n].empty()) {
          steps->push_back({StepKind::kDeliver, id, static_cast<uint8_t>(src), 0});
        }
      }
      for (uint32_t p = 0; p < c_.pages; ++p) {
        NodePageState s = nm.cache.StateOf(p);
        bool held = nm.cache.IsHeld(p);
        if (nm.evictions_left > 0 && !held &&
            (s == NodePageState::kShared || s == NodePageState::kModified)) {
          steps->push_back({StepKind::kEvict, id, static_cast<uint8_t>(p), 0});
        }
        // The runtime's hold timer: long enough for the woken vCPU to retry its access.
        if (held && !(nm.vcpu == Vcpu::kWoken && nm.op_page == p)) {
          steps->push_back({StepKind::kReleaseHold, id, static_cast<uint8_t>(p), 0});
        }
      }
    }
    // With the reduction, a faulting access is handed to the handler in the same step, so
    // it needs an idle handler (the vCPU simply faults a little later otherwise; a fault that
    // waits in the uffd queue has no effect until the handler reads it).
    bool handler_idle = nm.next_action >= nm.actions.size();
    auto may = [&](uint32_t p, bool write) {
      bool hit = write ? nm.mapping[p] == kWritable : nm.mapping[p] != kUnmapped;
      return hit || handler_idle || !c_.reduce_invisible_steps;
    };
    if (nm.vcpu == Vcpu::kIdle) {
      for (uint32_t p = 0; p < c_.pages; ++p) {
        if (may(p, false)) steps->push_back({StepKind::kAccess, id, static_cast<uint8_t>(p), 0});
        if (may(p, true)) steps->push_back({StepKind::kAccess, id, static_cast<uint8_t>(p), 1});
      }
    } else if (nm.vcpu == Vcpu::kWoken && may(nm.op_page, nm.op_access == Access::kWrite)) {
      steps->push_back({StepKind::kRetry, id, 0, 0});
    }
  }
}

bool ClusterModel::Invisible(const NodeModel& nm, const Action& a) {
  switch (a.type) {
    case ActionType::kSend:
    case ActionType::kStoreHomeCopy:
    case ActionType::kWakeVcpus:
      return true;
    case ActionType::kCopyOut:  // races only with a store by this node's vCPU
      return !(nm.vcpu == Vcpu::kIdle || nm.vcpu == Vcpu::kWoken);
    default:
      return false;
  }
}

std::string ClusterModel::Apply(World& w, const Step& s, std::string* what, uint64_t* reads) const {
  NodeModel& nm = w.nodes[s.node];
  switch (s.kind) {
    case StepKind::kRunAction:
      return RunAction(w, s.node, what);
    case StepKind::kHandleFault: {
      Fault f = nm.faults.front();
      nm.faults.erase(nm.faults.begin());
      return Handle(
          nm, nm.cache.OnFault(f.page, f.access, &nm.actions), 0,
          absl::StrFormat("node%d handles %s fault on page%d", s.node, ToString(f.access), f.page),
          what);
    }
    case StepKind::kDeliver: {
      auto& ch = w.channels[s.a * c_.nodes + s.node];
      Envelope e = ch.front();
      ch.erase(ch.begin());
      bool for_home = e.msg.type == MessageType::kPageRequest ||
                      e.msg.type == MessageType::kInvalidateAck ||
                      e.msg.type == MessageType::kWriteback;
      absl::Status st =
          for_home ? nm.home.OnMessage(e.msg, &nm.actions) : nm.cache.OnMessage(e.msg, &nm.actions);
      std::string desc;
      if (what) {
        desc = absl::StrFormat("deliver %s%s", ToString(e.msg),
                               e.msg.has_data ? absl::StrFormat(" value=%d", e.payload) : "");
        if (st.ok() && !for_home && nm.next_action >= nm.actions.size() &&
            nm.cache.IsHeld(e.msg.page)) {
          absl::StrAppend(&desc, " (deferred: page held)");
        }
      }
      return Handle(nm, st, e.payload, std::move(desc), what);
    }
    case StepKind::kEvict:
      --nm.evictions_left;
      return Handle(nm, nm.cache.Evict(s.a, &nm.actions), 0,
                    absl::StrFormat("node%d evicts page%d", s.node, s.a), what);
    case StepKind::kReleaseHold:
      return Handle(nm, nm.cache.ReleaseHold(s.a, &nm.actions), 0,
                    absl::StrFormat("node%d releases its hold on page%d", s.node, s.a), what);
    case StepKind::kAccess:
      nm.op_page = s.a;
      nm.op_access = s.b ? Access::kWrite : Access::kRead;
      return Access_(w, s.node, what, reads, "");
    case StepKind::kRetry:
      return Access_(w, s.node, what, reads, " (retry after wake)");
  }
  return "unknown step";
}

std::string ClusterModel::CheckState(const World& w) const {
  for (uint32_t p = 0; p < c_.pages; ++p) {
    int ro = 0, rw = 0;
    for (const NodeModel& nm : w.nodes) {
      ro += nm.mapping[p] == kReadOnly;
      rw += nm.mapping[p] == kWritable;
    }
    if (rw > 1 || (rw == 1 && ro > 0)) {
      return absl::StrFormat(
          "single-writer/multiple-reader violated on page%d: %d writable and %d read-only "
          "mappings",
          p, rw, ro);
    }
  }
  return "";
}

std::string ClusterModel::CheckTerminal(const World& w) const {
  for (uint32_t n = 0; n < c_.nodes; ++n) {
    const NodeModel& nm = w.nodes[n];
    if (nm.vcpu != Vcpu::kDone) {
      return absl::StrFormat(
          "deadlock: no step enabled but node%d's vCPU is %s on page%d with %d ops left", n,
          nm.vcpu == Vcpu::kBlocked ? "blocked" : "not done", nm.op_page, nm.ops_left);
    }
  }
  for (uint32_t p = 0; p < c_.pages; ++p) {
    const NodeModel& h = w.nodes[p % c_.nodes];
    HomeDirectory::PageView v = h.home.Lookup(p);
    if (v.busy || v.queued) {
      return absl::StrFormat("deadlock: all done but page%d's home is still busy", p);
    }
    for (uint32_t n = 0; n < c_.nodes; ++n) {
      NodePageState s = w.nodes[n].cache.StateOf(p);
      uint8_t m = w.nodes[n].mapping[p];
      bool ok;
      if (v.state == PageState::kModified && v.owner == n) {
        ok = s == NodePageState::kModified && m == kWritable;
      } else if (v.state == PageState::kShared && (v.sharers >> n & 1)) {
        ok = (s == NodePageState::kShared && m == kReadOnly) ||
             (s == NodePageState::kInvalid && m == kUnmapped);
      } else {
        ok = s == NodePageState::kInvalid && m == kUnmapped;
      }
      if (!ok) {
        return absl::StrFormat(
            "at rest, page%d's home says %s (owner %d, sharers %#x) but node%d is %s with "
            "mapping %d",
            p, ToString(v.state), v.owner == kNoNode ? -1 : static_cast<int>(v.owner), v.sharers, n,
            ToString(s), m);
      }
    }
    if (v.state != PageState::kModified && h.home_copy[p] != w.last_write[p]) {
      return absl::StrFormat("at rest, page%d's home copy is %d but the last write was %d", p,
                             h.home_copy[p], w.last_write[p]);
    }
  }
  return "";
}

std::pair<uint64_t, uint64_t> ClusterModel::Fingerprint(const World& w, std::string* buf) const {
  buf->clear();
  auto put = [buf](uint64_t x) { buf->append(reinterpret_cast<const char*>(&x), sizeof(x)); };
  for (const NodeModel& nm : w.nodes) {
    nm.cache.EncodeState(buf);
    nm.home.EncodeState(buf);
    buf->append(reinterpret_cast<const char*>(nm.mapping.data()), nm.mapping.size());
    for (uint32_t p = 0; p < c_.pages; ++p) put(uint64_t{nm.local[p]} << 32 | nm.home_copy[p]);
    put(nm.actions.size() - nm.next_action);
    for (size_t i = nm.next_action; i < nm.actions.size(); ++i) EncodeAction(nm.actions[i], buf);
    put(nm.payload);
    put(uint64_t{nm.outgoing} << 1 | nm.copied_out);
    put(nm.faults.size());
    for (const Fault& f : nm.faults) put(f.page * 2 + static_cast<uint32_t>(f.access));
    put(static_cast<uint64_t>(nm.vcpu) | uint64_t{nm.op_page} << 8 |
        static_cast<uint64_t>(nm.op_access) << 24 | uint64_t{nm.ops_left} << 32 |
        uint64_t{nm.evictions_left} << 48);
  }
  for (const auto& ch : w.channels) {
    put(ch.size());
    for (const Envelope& e : ch) {
      EncodeMessage(e.msg, buf);
      put(e.payload);
    }
  }
  for (uint32_t v : w.last_write) put(v);
  // Two differently salted hashes: 128 bits, so a false "already visited" is negligible
  // (about n^2 / 2^129 for n states).
  uint64_t h1 = absl::HashOf(*buf);
  uint64_t h2 = absl::HashOf(uint64_t{0x9e3779b97f4a7c15}, *buf, buf->size());
  return {h1, h2};
}

std::string ClusterModel::Describe(const World& w, const Step& s) const {
  World copy = w;
  std::string what;
  uint64_t reads = 0;
  Apply(copy, s, &what, &reads);
  return what;
}

void ClusterModel::EncodeMessage(const Message& m, std::string* buf) {
  uint64_t x[4] = {static_cast<uint64_t>(m.type) | uint64_t{m.from} << 8 | uint64_t{m.to} << 16 |
                       static_cast<uint64_t>(m.access) << 24 | uint64_t{m.have_copy} << 32 |
                       static_cast<uint64_t>(m.state) << 40 | uint64_t{m.zero_fill} << 48 |
                       uint64_t{m.has_data} << 56,
                   m.page, m.req_id, uint64_t{m.drop} | uint64_t{m.requester} << 8};
  buf->append(reinterpret_cast<const char*>(x), sizeof(x));
}

void ClusterModel::EncodeAction(const Action& a, std::string* buf) {
  uint64_t x[2] = {
      static_cast<uint64_t>(a.type) | uint64_t{a.writable} << 8 | uint64_t{a.zero_fill} << 16,
      a.page};
  buf->append(reinterpret_cast<const char*>(x), sizeof(x));
  if (a.type == ActionType::kSend) EncodeMessage(a.message, buf);
}

std::string ClusterModel::Handle(NodeModel& nm, const absl::Status& st, uint32_t payload,
                                 std::string desc, std::string* what) const {
  nm.payload = payload;
  if (what) {
    *what = desc;
    if (st.ok() && nm.next_action < nm.actions.size()) {
      std::vector<std::string> acts;
      for (size_t i = nm.next_action; i < nm.actions.size(); ++i) {
        acts.push_back(ToString(nm.actions[i]));
      }
      absl::StrAppend(what, " -> [", absl::StrJoin(acts, ", "), "]");
    }
  }
  if (!st.ok()) return absl::StrCat("protocol error: ", st.ToString());
  return "";
}

std::string ClusterModel::Access_(World& w, uint32_t n, std::string* what, uint64_t* reads,
                                  const char* suffix) const {
  NodeModel& nm = w.nodes[n];
  uint32_t p = nm.op_page;
  bool write = nm.op_access == Access::kWrite;
  bool permitted = write ? nm.mapping[p] == kWritable : nm.mapping[p] != kUnmapped;
  if (!permitted) {
    nm.vcpu = Vcpu::kBlocked;
    if (what) {
      *what =
          absl::StrFormat("node%d vCPU %s page%d%s: faults", n, ToString(nm.op_access), p, suffix);
    }
    if (!c_.reduce_invisible_steps) {
      nm.faults.push_back({p, nm.op_access});
      return "";
    }
    std::string desc = what ? *what : "";
    return Handle(nm, nm.cache.OnFault(p, nm.op_access, &nm.actions), 0, desc + ", handled", what);
  }
  std::string err;
  if (write) {
    uint32_t value = n * c_.ops_per_node + nm.ops_done + 1;  // unique per write
    nm.local[p] = value;
    w.last_write[p] = value;
    if (what) *what = absl::StrFormat("node%d vCPU writes %d to page%d%s", n, value, p, suffix);
  } else {
    ++*reads;
    if (what) {
      *what = absl::StrFormat("node%d vCPU reads page%d%s: %d", n, p, suffix, nm.local[p]);
    }
    if (nm.local[p] != w.last_write[p]) {
      err = absl::StrFormat(
          "stale read: node%d read %d from page%d but the last completed write was %d", n,
          nm.local[p], p, w.last_write[p]);
    }
  }
  ++nm.ops_done;
  --nm.ops_left;
  nm.vcpu = nm.ops_left ? Vcpu::kIdle : Vcpu::kDone;
  return err;
}

std::string ClusterModel::RunAction(World& w, uint32_t n, std::string* what) const {
  NodeModel& nm = w.nodes[n];
  const Action a = nm.actions[nm.next_action++];
  if (nm.next_action == nm.actions.size()) {
    nm.actions.clear();
    nm.next_action = 0;
  }
  if (what) *what = absl::StrFormat("node%d does %s", n, ToString(a));
  uint32_t p = static_cast<uint32_t>(a.page);
  uint8_t& map = nm.mapping[p];
  switch (a.type) {
    case ActionType::kSend: {
      const Message& m = a.message;
      if (m.from != n || m.to >= c_.nodes) return "message with a bad sender or recipient";
      Envelope e{m, 0};
      if (m.has_data) {
        if (m.type == MessageType::kWriteback) {
          if (!nm.copied_out) return "writeback with data but no CopyOut before it";
          e.payload = nm.outgoing;
          nm.copied_out = false;
        } else {
          e.payload = nm.home_copy[p];
        }
        if (what) absl::StrAppend(what, absl::StrFormat(" with value %d", e.payload));
      }
      w.channels[n * c_.nodes + m.to].push_back(e);
      return "";
    }
    case ActionType::kCopyOut:
      if (map == kUnmapped) return "copy out of a page that is not mapped";
      nm.outgoing = nm.local[p];
      nm.copied_out = true;
      return "";
    case ActionType::kInstallPage:
      if (map != kUnmapped) return "UFFDIO_COPY onto a present page (EEXIST)";
      map = a.writable ? kWritable : kReadOnly;
      nm.local[p] = a.zero_fill ? 0 : nm.payload;
      return "";
    case ActionType::kMakeWritable:
      if (map != kReadOnly) return "write-unprotect of a page that is not mapped read-only";
      map = kWritable;
      return "";
    case ActionType::kWriteProtect:
      if (map != kWritable) return "write-protect of a page that is not mapped writable";
      map = kReadOnly;
      return "";
    case ActionType::kDropPage:
      if (map == kUnmapped) return "drop of a page that is not mapped";
      map = kUnmapped;
      nm.local[p] = 0;
      return "";
    case ActionType::kWakeVcpus:
      if (nm.vcpu == Vcpu::kBlocked && nm.op_page == p) nm.vcpu = Vcpu::kWoken;
      return "";
    case ActionType::kStoreHomeCopy:
      nm.home_copy[p] = nm.payload;
      return "";
  }
  return "unknown action";
}

}  // namespace amalgam::directory::model_internal
