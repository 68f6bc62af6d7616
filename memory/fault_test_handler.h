// RecordingFaultHandler (tests only): records every fault and runs an optional reaction.
// Thread-safety: thread-safe. Ownership: owns its records.
#ifndef AMALGAM_MEMORY_FAULT_TEST_HANDLER_H_
#define AMALGAM_MEMORY_FAULT_TEST_HANDLER_H_

#include <functional>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "memory/page_fault_service.h"

namespace amalgam::memory::testing {

class RecordingFaultHandler : public PageFaultHandler {
 public:
  // Set before the service starts; runs on the service thread after the fault is recorded.
  std::function<void(const PageFault&)> react;

  void OnFault(const PageFault& fault) override {
    {
      absl::MutexLock lock(&mu_);
      faults_.push_back(fault);
    }
    if (react) react(fault);
  }
  // Waits (generously: the machine is shared) until at least n faults arrived.
  bool WaitForFaults(size_t n, absl::Duration timeout = absl::Seconds(30)) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return faults_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }
  std::vector<PageFault> faults() {
    absl::MutexLock lock(&mu_);
    return faults_;
  }

 private:
  absl::Mutex mu_;
  std::vector<PageFault> faults_ ABSL_GUARDED_BY(mu_);
};

}  // namespace amalgam::memory::testing

#endif  // AMALGAM_MEMORY_FAULT_TEST_HANDLER_H_
