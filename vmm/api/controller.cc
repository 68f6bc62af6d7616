#include "vmm/api/controller.h"

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "vmm/api/config.h"

namespace amalgam::vmm::api {
namespace {

const char* OpName(LifecycleOp op) {
  switch (op) {
    case LifecycleOp::kCreate:
      return "create";
    case LifecycleOp::kStart:
      return "start";
    case LifecycleOp::kPause:
      return "pause";
    case LifecycleOp::kResume:
      return "resume";
    case LifecycleOp::kShutdown:
      return "shut down";
  }
  return "?";
}

// What to do instead, given the state the VM is in.
const char* FixFor(v1::VmState state, LifecycleOp op) {
  switch (state) {
    case v1::VM_STATE_NOT_CREATED:
      return "create it first (Lifecycle.Create, `amalgamctl create --config FILE`)";
    case v1::VM_STATE_CREATED:
      return op == LifecycleOp::kCreate
                 ? "amalgam runs one VM per process: start another amalgam for another VM"
                 : "start it first (Lifecycle.Start, `amalgamctl start`)";
    case v1::VM_STATE_RUNNING:
      if (op == LifecycleOp::kStart) return "it is already started; nothing to do";
      if (op == LifecycleOp::kResume) return "it is not paused; nothing to do";
      return "amalgam runs one VM per process: start another amalgam for another VM";
    case v1::VM_STATE_PAUSED:
      if (op == LifecycleOp::kPause) return "it is already paused; nothing to do";
      if (op == LifecycleOp::kStart) return "resume it instead (`amalgamctl resume`)";
      return "amalgam runs one VM per process: start another amalgam for another VM";
    case v1::VM_STATE_STOPPED:
      return "a stopped VM cannot run again: start a new amalgam process to boot another VM";
    default:
      return "report this as a bug";
  }
}

bool Allowed(v1::VmState state, LifecycleOp op) {
  switch (op) {
    case LifecycleOp::kCreate:
      return state == v1::VM_STATE_NOT_CREATED;
    case LifecycleOp::kStart:
      return state == v1::VM_STATE_CREATED;
    case LifecycleOp::kPause:
      return state == v1::VM_STATE_RUNNING;
    case LifecycleOp::kResume:
      return state == v1::VM_STATE_PAUSED;
    case LifecycleOp::kShutdown:
      return state == v1::VM_STATE_CREATED || state == v1::VM_STATE_RUNNING ||
             state == v1::VM_STATE_PAUSED;
  }
  return false;
}

v1::Metric MakeMetric(std::string name, std::string help, v1::Metric::Kind kind, double value) {
  v1::Metric m;
  m.set_name(std::move(name));
  m.set_library("api");
  m.set_help(std::move(help));
  m.set_kind(kind);
  m.set_value(value);
  return m;
}

// While no vCPU can change state behind our back, poll the backend this often in Wait.
constexpr absl::Duration kWaitSlice = absl::Milliseconds(100);

}  // namespace

const char* StateName(v1::VmState state) {
  switch (state) {
    case v1::VM_STATE_NOT_CREATED:
      return "not created";
    case v1::VM_STATE_CREATED:
      return "created";
    case v1::VM_STATE_RUNNING:
      return "running";
    case v1::VM_STATE_PAUSED:
      return "paused";
    case v1::VM_STATE_STOPPED:
      return "stopped";
    default:
      return "unknown";
  }
}

absl::Status CheckTransition(v1::VmState state, LifecycleOp op) {
  if (Allowed(state, op)) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("cannot ", OpName(op), " the VM: it is ",
                                                    StateName(state), "; ", FixFor(state, op)));
}

v1::Metric ToMetric(const MetricSample& sample) {
  v1::Metric m;
  m.set_name(SanitizeMetricName(sample.name));
  m.set_library(sample.library);
  m.set_help(sample.help);
  m.set_kind(sample.kind == MetricKind::kCounter ? v1::Metric::KIND_COUNTER
                                                 : v1::Metric::KIND_GAUGE);
  m.set_value(sample.value);
  for (const auto& [k, v] : sample.labels) {
    // "library" is the sample's own field; a source cannot override it with a label.
    if (k == "library") continue;
    (*m.mutable_labels())[SanitizeLabelName(k)] = v;
  }
  return m;
}

VmController::VmController(std::unique_ptr<VmBackend> backend) : backend_(std::move(backend)) {}

void VmController::MarkStoppedLocked(v1::VmExit exit) {
  state_ = v1::VM_STATE_STOPPED;
  exit_ = std::move(exit);
  stopped_at_ = absl::Now();
}

void VmController::RefreshLocked() {
  if (state_ != v1::VM_STATE_RUNNING && state_ != v1::VM_STATE_PAUSED) return;
  if (std::optional<v1::VmExit> exit = backend_->WaitForExit(absl::ZeroDuration())) {
    MarkStoppedLocked(*std::move(exit));
  }
}

absl::StatusOr<v1::VmInfo> VmController::Create(const v1::VmConfig& config) {
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = CheckTransition(state_, LifecycleOp::kCreate); !s.ok()) return s;
    if (absl::Status s = ValidateVmConfig(config); !s.ok()) return s;
    if (absl::Status s = backend_->Create(config); !s.ok()) return s;
    config_ = config;
    state_ = v1::VM_STATE_CREATED;
  }
  return Info();
}

absl::Status VmController::RunTransition(LifecycleOp op, v1::VmState next,
                                         absl::Status (VmBackend::*call)()) {
  absl::MutexLock lock(&mu_);
  RefreshLocked();
  if (absl::Status s = CheckTransition(state_, op); !s.ok()) return s;
  if (absl::Status s = (backend_.get()->*call)(); !s.ok()) {
    // A guest that ended during the call (e.g. while being paused) is a state problem, not a
    // failure of the VMM: report it as such.
    RefreshLocked();
    if (state_ == v1::VM_STATE_STOPPED) {
      return absl::FailedPreconditionError(absl::StrCat("cannot ", OpName(op),
                                                        " the VM: it stopped meanwhile (",
                                                        s.message(), "); ", FixFor(state_, op)));
    }
    return s;
  }
  state_ = next;
  // The guest may have ended while we paused/resumed it; report that state, not ours.
  RefreshLocked();
  return absl::OkStatus();
}

absl::Status VmController::Start() {
  absl::Status s = RunTransition(LifecycleOp::kStart, v1::VM_STATE_RUNNING, &VmBackend::Start);
  if (s.ok()) {
    absl::MutexLock lock(&mu_);
    started_at_ = absl::Now();
  }
  return s;
}

absl::Status VmController::Pause() {
  return RunTransition(LifecycleOp::kPause, v1::VM_STATE_PAUSED, &VmBackend::Pause);
}

absl::Status VmController::Resume() {
  return RunTransition(LifecycleOp::kResume, v1::VM_STATE_RUNNING, &VmBackend::Resume);
}

absl::StatusOr<v1::VmExit> VmController::Shutdown() {
  absl::MutexLock lock(&mu_);
  RefreshLocked();
  if (absl::Status s = CheckTransition(state_, LifecycleOp::kShutdown); !s.ok()) return s;
  if (absl::Status s = backend_->Shutdown(); !s.ok()) return s;
  // If the guest ended on its own just before, keep its reason; otherwise it was us.
  std::optional<v1::VmExit> exit = backend_->WaitForExit(absl::ZeroDuration());
  if (!exit.has_value() || exit->reason() == v1::VmExit::REASON_UNSPECIFIED) {
    exit = v1::VmExit();
    exit->set_reason(v1::VmExit::REASON_USER_SHUTDOWN);
    exit->set_detail("stopped by Lifecycle.Shutdown");
  }
  MarkStoppedLocked(*exit);
  return exit_;
}

absl::StatusOr<v1::VmExit> VmController::Wait(absl::Time deadline,
                                              const std::function<bool()>& cancelled) {
  waiters_.fetch_add(1);
  absl::Cleanup done = [this] { waiters_.fetch_sub(1); };
  for (;;) {
    bool running = false;
    {
      absl::MutexLock lock(&mu_);
      if (state_ == v1::VM_STATE_NOT_CREATED) {
        return absl::FailedPreconditionError(absl::StrCat(
            "cannot wait for the VM: it is not created; ", FixFor(state_, LifecycleOp::kStart)));
      }
      if (state_ == v1::VM_STATE_STOPPED) return exit_;
      running = state_ == v1::VM_STATE_RUNNING || state_ == v1::VM_STATE_PAUSED;
    }
    if (cancelled && cancelled()) return absl::CancelledError("the caller went away");
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      return absl::DeadlineExceededError(
          "the VM is still alive at the deadline; wait longer or shut it down");
    }
    const absl::Duration slice = std::min(kWaitSlice, deadline - now);
    if (running) {
      // Blocks outside mu_ so that Pause/Shutdown/Info from other clients proceed meanwhile.
      if (std::optional<v1::VmExit> exit = backend_->WaitForExit(slice)) {
        absl::MutexLock lock(&mu_);
        if (state_ != v1::VM_STATE_STOPPED) MarkStoppedLocked(*std::move(exit));
      }
    } else {
      // CREATED: nothing runs yet; sleep until someone starts or shuts it down.
      absl::MutexLock lock(&mu_);
      const v1::VmState seen = state_;
      auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return state_ != seen; };
      mu_.AwaitWithTimeout(absl::Condition(&changed), slice);
    }
  }
}

v1::VmInfo VmController::Info() {
  absl::MutexLock lock(&mu_);
  RefreshLocked();
  v1::VmInfo info;
  info.set_state(state_);
  if (state_ == v1::VM_STATE_NOT_CREATED) return info;
  *info.mutable_config() = config_;
  backend_->FillInfo(&info);
  if (state_ == v1::VM_STATE_STOPPED) *info.mutable_exit() = exit_;
  if (started_at_ != absl::InfinitePast()) {
    const absl::Time end = state_ == v1::VM_STATE_STOPPED ? stopped_at_ : absl::Now();
    info.set_uptime_ms(absl::ToInt64Milliseconds(end - started_at_));
  }
  return info;
}

v1::VmState VmController::state() {
  absl::MutexLock lock(&mu_);
  RefreshLocked();
  return state_;
}

void VmController::CountRequest(const std::string& method, absl::StatusCode code) {
  absl::MutexLock lock(&counters_mu_);
  ++requests_[{method, code}];
}

std::vector<v1::Metric> VmController::Metrics() {
  std::vector<v1::Metric> out;
  {
    absl::MutexLock lock(&mu_);
    RefreshLocked();
    for (v1::VmState s : {v1::VM_STATE_NOT_CREATED, v1::VM_STATE_CREATED, v1::VM_STATE_RUNNING,
                          v1::VM_STATE_PAUSED, v1::VM_STATE_STOPPED}) {
      v1::Metric m =
          MakeMetric("amalgam_api_vm_state", "1 for the state the VM is in, 0 for the others",
                     v1::Metric::KIND_GAUGE, s == state_ ? 1 : 0);
      (*m.mutable_labels())["state"] = StateName(s);
      out.push_back(std::move(m));
    }
    if (state_ != v1::VM_STATE_NOT_CREATED) backend_->AppendMetrics(&out);
  }
  out.push_back(MakeMetric("amalgam_api_waiters", "Wait calls currently blocked",
                           v1::Metric::KIND_GAUGE, static_cast<double>(waiters_.load())));
  absl::MutexLock lock(&counters_mu_);
  for (const auto& [key, count] : requests_) {
    v1::Metric m = MakeMetric("amalgam_api_requests_total",
                              "Control API requests by method and gRPC status code",
                              v1::Metric::KIND_COUNTER, static_cast<double>(count));
    (*m.mutable_labels())["method"] = key.first;
    (*m.mutable_labels())["code"] = absl::StatusCodeToString(key.second);
    out.push_back(std::move(m));
  }
  for (const MetricSample& s : registry_.Collect()) out.push_back(ToMetric(s));
  return out;
}

}  // namespace amalgam::vmm::api
