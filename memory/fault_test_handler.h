// RecordingFaultHandler (tests only): records every fault and runs an optional reaction.
// Thread-safety: thread-safe. Ownership: owns its records.
#ifndef AMALGAM_MEMORY_FAULT_TEST_HANDLER_H_
#define AMALGAM_MEMORY_FAULT_TEST_HANDLER_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "memory/page_fault_service.h"

namespace amalgam::memory::testing {

class RecordingFaultHandler : public PageFaultHandler {
 public:
  using React = std::function<absl::Status(const PageFault&)>;
  // Runs on the service thread after each fault is recorded; a non-OK result is kept for
  // errors() (Catch2 assertions are not thread-safe, so reactions never assert).
  void set_react(React react) {
    absl::MutexLock lock(&mu_);
    react_ = std::move(react);
  }

  void OnFault(const PageFault& fault) override {
    React react;
    {
      absl::MutexLock lock(&mu_);
      faults_.push_back(fault);
      react = react_;
    }
    if (!react) return;
    absl::Status s = react(fault);
    if (!s.ok()) {
      absl::MutexLock lock(&mu_);
      errors_.push_back(s.ToString());
    }
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
  std::vector<std::string> errors() {
    absl::MutexLock lock(&mu_);
    return errors_;
  }

 private:
  absl::Mutex mu_;
  React react_ ABSL_GUARDED_BY(mu_);
  std::vector<PageFault> faults_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> errors_ ABSL_GUARDED_BY(mu_);
};

}  // namespace amalgam::memory::testing

#endif  // AMALGAM_MEMORY_FAULT_TEST_HANDLER_H_
