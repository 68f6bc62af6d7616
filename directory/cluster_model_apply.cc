// ClusterModel: applying one step (an action, a fault, a delivery, an eviction, a hold release, a
// vCPU access) to a World, and describing it for traces.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "directory/cluster_model.h"

namespace amalgam::directory::model_internal {

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

std::string ClusterModel::Describe(const World& w, const Step& s) const {
  World copy = w;
  std::string what;
  uint64_t reads = 0;
  Apply(copy, s, &what, &reads);
  return what;
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
