// VmController: the VM lifecycle state machine over a VmBackend. Every call that does not fit
// the current state is FAILED_PRECONDITION with a message saying what to do instead.
// Thread-safe (one mutex; Wait blocks without holding it). Owns the backend.
#ifndef AMALGAM_VMM_API_CONTROLLER_H_
#define AMALGAM_VMM_API_CONTROLLER_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "vmm/api/amalgam.pb.h"
#include "vmm/api/backend.h"
#include "vmm/api/metrics_source.h"

namespace amalgam::vmm::api {

enum class LifecycleOp { kCreate, kStart, kPause, kResume, kShutdown };

// Pure transition rule: OK if `op` is allowed in `state`, else FAILED_PRECONDITION explaining
// why and what to call instead.
absl::Status CheckTransition(v1::VmState state, LifecycleOp op);

// "running", "paused", ... for messages and human-readable output.
const char* StateName(v1::VmState state);

// A source's sample as the API reports it (names and label names made Prometheus-safe).
v1::Metric ToMetric(const MetricSample& sample);

class VmController {
 public:
  explicit VmController(std::unique_ptr<VmBackend> backend);
  VmController(const VmController&) = delete;
  VmController& operator=(const VmController&) = delete;

  // Validates the config (INVALID_ARGUMENT naming the field) and builds the VM.
  absl::StatusOr<v1::VmInfo> Create(const v1::VmConfig& config);
  absl::Status Start();
  absl::Status Pause();
  absl::Status Resume();
  absl::StatusOr<v1::VmExit> Shutdown();
  // Blocks until the VM has stopped. DEADLINE_EXCEEDED at `deadline`; CANCELLED as soon as
  // `cancelled()` returns true (checked a few times a second, e.g. a client that went away).
  absl::StatusOr<v1::VmExit> Wait(absl::Time deadline, const std::function<bool()>& cancelled);
  v1::VmInfo Info();
  // The API's own metrics (requests and failures per method), the backend's, then those of
  // every source in metrics_registry().
  std::vector<v1::Metric> Metrics();
  // Where other parts of amalgam (e.g. the node runtime) register their counters.
  MetricsRegistry& metrics_registry() { return registry_; }
  v1::VmState state();

  // Counts one API request and its outcome (the service calls it for every RPC).
  void CountRequest(const std::string& method, absl::StatusCode code);

 private:
  // Notices a VM that ended by itself (guest shutdown, error) while RUNNING or PAUSED.
  void RefreshLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MarkStoppedLocked(v1::VmExit exit) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status RunTransition(LifecycleOp op, v1::VmState next, absl::Status (VmBackend::*call)());

  const std::unique_ptr<VmBackend> backend_;
  absl::Mutex mu_;
  v1::VmState state_ ABSL_GUARDED_BY(mu_) = v1::VM_STATE_NOT_CREATED;
  v1::VmConfig config_ ABSL_GUARDED_BY(mu_);
  v1::VmExit exit_ ABSL_GUARDED_BY(mu_);
  absl::Time started_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time stopped_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();

  // Wait calls blocked right now (a gauge: shows clients that went away are let go).
  std::atomic<int64_t> waiters_{0};
  MetricsRegistry registry_;
  absl::Mutex counters_mu_;
  // (method, code) -> count.
  std::map<std::pair<std::string, absl::StatusCode>, uint64_t> requests_
      ABSL_GUARDED_BY(counters_mu_);
};

}  // namespace amalgam::vmm::api

#endif  // AMALGAM_VMM_API_CONTROLLER_H_
