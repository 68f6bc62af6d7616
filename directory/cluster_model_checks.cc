// ClusterModel: the invariants checked in every state and at the end, and the canonical
// fingerprint that the exhaustive search deduplicates states by.
#include "absl/hash/hash.h"
#include "absl/strings/str_format.h"
#include "directory/cluster_model.h"

namespace amalgam::directory::model_internal {

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

}  // namespace amalgam::directory::model_internal
