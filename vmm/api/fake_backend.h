// FakeBackend: an in-process VmBackend with no KVM, for tests of the control logic. Its "guest"
// is a thread that bumps a progress counter while running. Thread-safe.
#ifndef AMALGAM_VMM_API_FAKE_BACKEND_H_
#define AMALGAM_VMM_API_FAKE_BACKEND_H_

#include <atomic>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "vmm/api/backend.h"

namespace amalgam::vmm::api {

class FakeBackend final : public VmBackend {
 public:
  FakeBackend() = default;
  ~FakeBackend() override;

  absl::Status Create(const v1::VmConfig& config) override;
  absl::Status Start() override;
  absl::Status Pause() override;
  absl::Status Resume() override;
  absl::Status Shutdown() override;
  std::optional<v1::VmExit> WaitForExit(absl::Duration timeout) override;
  void FillInfo(v1::VmInfo* info) override;
  void AppendMetrics(std::vector<v1::Metric>* out) override;

  // Test controls.
  // The guest ends by itself with `code` (as through the debug-exit port).
  void GuestExit(int code);
  // The next backend call fails with `status`.
  void FailNextCall(absl::Status status);
  uint64_t progress() const { return progress_.load(); }
  int calls() const;

 private:
  absl::Status TakeFailure() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StopGuestThread();

  mutable absl::Mutex mu_;
  uint32_t vcpus_ ABSL_GUARDED_BY(mu_) = 0;
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<v1::VmExit> exit_ ABSL_GUARDED_BY(mu_);
  absl::Status next_failure_ ABSL_GUARDED_BY(mu_);
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<uint64_t> progress_{0};
  std::thread guest_;
};

}  // namespace amalgam::vmm::api

#endif  // AMALGAM_VMM_API_FAKE_BACKEND_H_
