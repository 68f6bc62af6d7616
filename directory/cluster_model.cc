// ClusterModel: the initial world and which steps are enabled in a state (with the
// invisible-step reduction). Applying a step: cluster_model_apply.cc; invariants and
// fingerprints: cluster_model_checks.cc.
#include "directory/cluster_model.h"

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

}  // namespace amalgam::directory::model_internal
