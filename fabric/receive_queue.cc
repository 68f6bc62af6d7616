#include "fabric/receive_queue.h"

namespace amalgam::fabric {

bool ReceiveQueue::Push(ReceivedMessage message) {
  absl::MutexLock lock(&mu_);
  if (closed_) return false;
  queue_.push_back(std::move(message));
  return true;
}

absl::StatusOr<ReceivedMessage> ReceiveQueue::Pop(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return closed_ || !queue_.empty(); };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (!queue_.empty()) {
    ReceivedMessage m = std::move(queue_.front());
    queue_.pop_front();
    return m;
  }
  if (closed_) return absl::CancelledError("fabric transport closed");
  return absl::DeadlineExceededError("no fabric message within the timeout");
}

std::optional<ReceivedMessage> ReceiveQueue::TryPop() {
  absl::MutexLock lock(&mu_);
  if (queue_.empty()) return std::nullopt;
  std::optional<ReceivedMessage> m(std::move(queue_.front()));
  queue_.pop_front();
  return m;
}

void ReceiveQueue::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

size_t ReceiveQueue::size() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

}  // namespace amalgam::fabric
