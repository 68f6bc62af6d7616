#include "directory/protocol_model.h"

#include <random>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "directory/cluster_model.h"

namespace amalgam::directory {
namespace {

using model_internal::ClusterModel;
using model_internal::Step;
using model_internal::World;

class Explorer {
 public:
  explicit Explorer(const ModelConfig& c) : c_(c), model_(c) {}

  CheckResult Run() {
    World w = model_.Initial();
    auto key = model_.Fingerprint(w, &buf_);
    visited_.insert(key);
    on_stack_.insert(key);
    r_.states = 1;
    Dfs(w, 0);
    return r_;
  }

 private:
  using Key = std::pair<uint64_t, uint64_t>;
  static constexpr uint32_t kDepthBound = 2000;

  // Returns false to stop the search.
  bool Dfs(const World& w, uint32_t depth) {
    if (depth > r_.max_depth) r_.max_depth = depth;
    // Every step consumes bounded work (an op, an eviction, a message, a fault, an action);
    // a path this long means requests keep being re-issued without completing.
    if (depth > kDepthBound) return Fail("livelock: a path exceeded the step bound");
    std::vector<Step> steps;
    model_.Enabled(w, &steps);
    if (steps.empty()) {
      ++r_.terminal_states;
      std::string err = model_.CheckTerminal(w);
      if (!err.empty()) return Fail(err);
      return true;
    }
    for (const Step& s : steps) {
      World next = w;
      ++r_.transitions;
      path_.push_back(s);
      std::string err = model_.Apply(next, s, nullptr, &r_.reads_checked);
      if (err.empty()) err = model_.CheckState(next);
      if (!err.empty()) return Fail(err);
      Key key = model_.Fingerprint(next, &buf_);
      if (on_stack_.contains(key)) return Fail("livelock: a cycle of steps makes no progress");
      if (visited_.insert(key).second) {
        if (++r_.states > c_.max_states) {
          r_.truncated = true;
          return false;
        }
        on_stack_.insert(key);
        if (!Dfs(next, depth + 1)) return false;
        on_stack_.erase(key);
      }
      path_.pop_back();
    }
    return true;
  }

  bool Fail(const std::string& err) {
    r_.ok = false;
    r_.violation = err;
    World w = model_.Initial();
    uint64_t reads = 0;
    size_t first = path_.size() > 300 ? path_.size() - 300 : 0;  // keep the tail readable
    for (size_t i = 0; i < path_.size(); ++i) {
      std::string what;
      model_.Apply(w, path_[i], &what, &reads);
      if (i >= first) r_.trace.push_back(what);
    }
    return false;
  }

  ModelConfig c_;
  ClusterModel model_;
  std::string buf_;
  absl::flat_hash_set<Key> visited_;
  absl::flat_hash_set<Key> on_stack_;
  std::vector<Step> path_;
  CheckResult r_;
};

}  // namespace

CheckResult ExploreAll(const ModelConfig& config) { return Explorer(config).Run(); }

CheckResult RandomWalks(const ModelConfig& config, uint64_t seed, uint32_t walks) {
  CheckResult r;
  ClusterModel model(config);
  std::mt19937_64 rng(seed);
  std::vector<Step> steps;
  // Every step consumes an op, an eviction, a message, a fault or an action, and each op causes
  // a bounded amount of those; a walk longer than this is a livelock.
  const uint64_t bound =
      1000ull * config.nodes * (config.ops_per_node + config.evictions_per_node + 1) * config.nodes;
  for (uint32_t walk = 0; walk < walks && r.ok; ++walk) {
    World w = model.Initial();
    std::vector<Step> path;
    uint64_t depth = 0;
    for (;;) {
      model.Enabled(w, &steps);
      std::string err;
      if (steps.empty()) {
        ++r.terminal_states;
        err = model.CheckTerminal(w);
      } else if (depth > bound) {
        err = "livelock: walk exceeded its step bound";
      } else {
        Step s = steps[rng() % steps.size()];
        path.push_back(s);
        ++r.transitions;
        ++depth;
        err = model.Apply(w, s, nullptr, &r.reads_checked);
        if (err.empty()) err = model.CheckState(w);
      }
      if (!err.empty()) {
        r.ok = false;
        r.violation = absl::StrFormat("walk %d (seed %d): %s", walk, seed, err);
        World replay = model.Initial();
        uint64_t reads = 0;
        size_t first = path.size() > 200 ? path.size() - 200 : 0;  // keep the tail readable
        for (size_t i = 0; i < path.size(); ++i) {
          std::string what;
          model.Apply(replay, path[i], &what, &reads);
          if (i >= first) r.trace.push_back(what);
        }
        break;
      }
      if (steps.empty()) break;
    }
    if (depth > r.max_depth) r.max_depth = static_cast<uint32_t>(depth);
  }
  r.states = r.transitions;  // walks do not deduplicate
  return r;
}

std::string Summarize(const CheckResult& r) {
  std::string s = absl::StrFormat(
      "%s: %d states, %d transitions, %d terminal states, %d reads checked, max depth %d%s\n",
      r.ok ? (r.truncated ? "TRUNCATED" : "OK") : "VIOLATION", r.states, r.transitions,
      r.terminal_states, r.reads_checked, r.max_depth,
      r.truncated ? " (state limit hit: not exhaustive)" : "");
  if (!r.ok) {
    absl::StrAppend(&s, "violation: ", r.violation, "\ninterleaving (", r.trace.size(),
                    " steps):\n");
    for (size_t i = 0; i < r.trace.size(); ++i) {
      absl::StrAppend(&s, absl::StrFormat("  %3d. %s\n", i + 1, r.trace[i]));
    }
  }
  return s;
}

}  // namespace amalgam::directory
