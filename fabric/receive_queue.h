// ReceiveQueue: the hand-off from a transport's receive thread(s) to its Receive() caller.
// Unbounded FIFO (the transports apply back-pressure by link flow control, not by dropping).
// Thread-safety: thread-safe. Owns the queued messages.
#ifndef AMALGAM_FABRIC_RECEIVE_QUEUE_H_
#define AMALGAM_FABRIC_RECEIVE_QUEUE_H_

#include <deque>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fabric/message.h"

namespace amalgam::fabric {

class ReceiveQueue {
 public:
  // Returns false (and drops the message) after Close().
  bool Push(ReceivedMessage message);
  // The next message if one is queued, without waiting.
  std::optional<ReceivedMessage> TryPop();
  // DEADLINE_EXCEEDED on timeout, CANCELLED when closed and empty.
  absl::StatusOr<ReceivedMessage> Pop(absl::Duration timeout);
  void Close();
  size_t size() const;

 private:
  mutable absl::Mutex mu_;
  std::deque<ReceivedMessage> queue_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace amalgam::fabric

#endif  // AMALGAM_FABRIC_RECEIVE_QUEUE_H_
