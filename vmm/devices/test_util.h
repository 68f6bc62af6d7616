// Test doubles for device tests: a recording sink, IRQ line and stop requester (pure logic).
// Thread-safety: each locks its own state.
#ifndef AMALGAM_VMM_DEVICES_TEST_UTIL_H_
#define AMALGAM_VMM_DEVICES_TEST_UTIL_H_

#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "vmm/devices/byte_sink.h"
#include "vmm/devices/irq_line.h"
#include "vmm/exit_outcome.h"

namespace amalgam::vmm::devices {

class StringSink : public ByteSink {
 public:
  void Write(absl::Span<const uint8_t> bytes) override {
    absl::MutexLock lock(&mu_);
    out_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  std::string str() {
    absl::MutexLock lock(&mu_);
    return out_;
  }

 private:
  absl::Mutex mu_;
  std::string out_;
};

class RecordingIrq : public IrqLine {
 public:
  void SetLevel(bool asserted) override {
    absl::MutexLock lock(&mu_);
    levels_.push_back(asserted);
  }
  std::vector<bool> levels() {
    absl::MutexLock lock(&mu_);
    return levels_;
  }
  bool level() {
    absl::MutexLock lock(&mu_);
    return !levels_.empty() && levels_.back();
  }

 private:
  absl::Mutex mu_;
  std::vector<bool> levels_;
};

class RecordingStop : public StopRequester {
 public:
  void RequestStop(ExitOutcome outcome) override {
    absl::MutexLock lock(&mu_);
    outcomes_.push_back(std::move(outcome));
  }
  std::vector<ExitOutcome> outcomes() {
    absl::MutexLock lock(&mu_);
    return outcomes_;
  }

 private:
  absl::Mutex mu_;
  std::vector<ExitOutcome> outcomes_;
};

}  // namespace amalgam::vmm::devices

#endif  // AMALGAM_VMM_DEVICES_TEST_UTIL_H_
