#include "vmm/api/fake_backend.h"

namespace amalgam::vmm::api {

FakeBackend::~FakeBackend() { StopGuestThread(); }

void FakeBackend::StopGuestThread() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (guest_.joinable()) guest_.join();
}

absl::Status FakeBackend::TakeFailure() {
  ++calls_;
  absl::Status s = std::move(next_failure_);
  next_failure_ = absl::OkStatus();
  return s;
}

absl::Status FakeBackend::Create(const v1::VmConfig& config) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = TakeFailure(); !s.ok()) return s;
  vcpus_ = config.vcpus();
  return absl::OkStatus();
}

absl::Status FakeBackend::Start() {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = TakeFailure(); !s.ok()) return s;
  running_ = true;
  guest_ = std::thread([this] {
    absl::MutexLock lock(&mu_);
    for (;;) {
      auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || exit_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&wake), absl::Milliseconds(1))) return;
      if (!paused_) progress_.fetch_add(1);
    }
  });
  return absl::OkStatus();
}

absl::Status FakeBackend::Pause() {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = TakeFailure(); !s.ok()) return s;
  paused_ = true;
  return absl::OkStatus();
}

absl::Status FakeBackend::Resume() {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = TakeFailure(); !s.ok()) return s;
  paused_ = false;
  return absl::OkStatus();
}

absl::Status FakeBackend::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = TakeFailure(); !s.ok()) return s;
    if (!exit_) {
      exit_ = v1::VmExit();
      exit_->set_reason(v1::VmExit::REASON_USER_SHUTDOWN);
    }
  }
  StopGuestThread();
  return absl::OkStatus();
}

std::optional<v1::VmExit> FakeBackend::WaitForExit(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ended = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return exit_.has_value(); };
  mu_.AwaitWithTimeout(absl::Condition(&ended), timeout);
  return exit_;
}

void FakeBackend::FillInfo(v1::VmInfo* info) {
  absl::MutexLock lock(&mu_);
  for (uint32_t i = 0; i < vcpus_; ++i) {
    v1::VcpuInfo* v = info->add_vcpus();
    v->set_index(i);
    v->set_run_state(exit_      ? v1::VCPU_RUN_STATE_STOPPED
                     : paused_  ? v1::VCPU_RUN_STATE_PAUSED
                     : running_ ? v1::VCPU_RUN_STATE_RUNNING
                                : v1::VCPU_RUN_STATE_CREATED);
    v->set_exits(progress_.load());
  }
  v1::DeviceInfo* d = info->add_devices();
  d->set_id("serial0");
  d->set_kind("serial");
}

void FakeBackend::AppendMetrics(std::vector<v1::Metric>* out) {
  v1::Metric m;
  m.set_name("amalgam_fake_progress_total");
  m.set_library("fake");
  m.set_help("Steps the fake guest made");
  m.set_kind(v1::Metric::KIND_COUNTER);
  m.set_value(static_cast<double>(progress_.load()));
  out->push_back(std::move(m));
}

void FakeBackend::GuestExit(int code) {
  absl::MutexLock lock(&mu_);
  if (exit_) return;
  exit_ = v1::VmExit();
  exit_->set_reason(v1::VmExit::REASON_GUEST_SHUTDOWN);
  exit_->set_exit_code(code);
}

void FakeBackend::FailNextCall(absl::Status status) {
  absl::MutexLock lock(&mu_);
  next_failure_ = std::move(status);
}

int FakeBackend::calls() const {
  absl::MutexLock lock(&mu_);
  return calls_;
}

}  // namespace amalgam::vmm::api
