#include "fabric/rpc_channel.h"

#include <sched.h>

#include "absl/strings/str_cat.h"

namespace amalgam::fabric {

struct RpcChannel::PendingCall {
  NodeId dst = 0;
  absl::Mutex mu;
  bool done ABSL_GUARDED_BY(mu) = false;
  std::atomic<bool> answered{false};  // set with `done`; read without the lock while spinning
  absl::StatusOr<ReceivedMessage> result ABSL_GUARDED_BY(mu) = absl::UnknownError("no reply");
};

namespace {

constexpr int64_t kReplySpinNs = 20'000;  // covers a typical round trip here (~10 us)

std::unique_ptr<capnp::MallocMessageBuilder> ErrorReply(const absl::Status& status) {
  auto b = std::make_unique<capnp::MallocMessageBuilder>();
  auto e = b->initRoot<schema::Message>().initRpcError();
  e.setCode(static_cast<uint32_t>(status.code()));
  e.setMessage(std::string(status.message()));
  return b;
}

}  // namespace

RpcChannel::RpcChannel(Transport* transport) : transport_(transport) {
  dispatcher_ = std::thread([this] { DispatchLoop(); });
}

RpcChannel::~RpcChannel() { Stop(); }

void RpcChannel::Handle(schema::Message::Which type, Handler handler) {
  absl::MutexLock lock(&mu_);
  handlers_[static_cast<int>(type)] = std::move(handler);
}

void RpcChannel::SetOneWayHandler(OneWayHandler handler) {
  absl::MutexLock lock(&mu_);
  one_way_ = std::move(handler);
}

void RpcChannel::Stop() {
  if (stop_.exchange(true)) return;
  if (dispatcher_.joinable()) dispatcher_.join();
  absl::flat_hash_map<uint64_t, std::shared_ptr<PendingCall>> pending;
  {
    absl::MutexLock lock(&mu_);
    pending.swap(pending_);
  }
  for (auto& [id, call] : pending) {
    absl::MutexLock lock(&call->mu);
    call->result = absl::CancelledError("RPC channel stopped");
    call->done = true;
  }
}

void RpcChannel::DispatchLoop() {
  while (!stop_.load()) {
    auto message = transport_->Receive(absl::Milliseconds(100));
    if (!message.ok()) {
      if (message.status().code() == absl::StatusCode::kCancelled) break;
      continue;
    }
    uint8_t flags = message->header().flags;
    if (flags & kFlagRpcReply) {
      OnReply(*std::move(message));
    } else if (flags & kFlagRpcRequest) {
      OnRequest(*std::move(message));
    } else {
      OneWayHandler handler;
      {
        absl::MutexLock lock(&mu_);
        handler = one_way_;
      }
      if (handler) {
        handler(*std::move(message));
      } else {
        drops_.Count(DropReason::kUnhandled);
      }
    }
  }
}

void RpcChannel::OnReply(ReceivedMessage reply) {
  std::shared_ptr<PendingCall> call;
  {
    absl::MutexLock lock(&mu_);
    auto it = pending_.find(reply.rpc_id());
    // A reply must come from the node the call went to; anything else is late or stray.
    if (it != pending_.end() && it->second->dst == reply.source()) {
      call = std::move(it->second);
      pending_.erase(it);
    }
  }
  if (call == nullptr) {
    drops_.Count(DropReason::kLateReply);
    return;
  }
  absl::MutexLock lock(&call->mu);
  if (reply.type() == schema::Message::RPC_ERROR) {
    auto e = reply.message().getRpcError();
    uint32_t code = e.getCode();
    if (code == 0 || code > static_cast<uint32_t>(absl::StatusCode::kUnauthenticated)) {
      code = static_cast<uint32_t>(absl::StatusCode::kUnknown);
    }
    call->result = absl::Status(static_cast<absl::StatusCode>(code),
                                absl::StrCat("node ", reply.source(), ": ", e.getMessage().cStr()));
  } else {
    call->result = std::move(reply);
  }
  call->done = true;
  call->answered.store(true, std::memory_order_release);
}

void RpcChannel::OnRequest(ReceivedMessage request) {
  Handler handler;
  {
    absl::MutexLock lock(&mu_);
    auto it = handlers_.find(static_cast<int>(request.type()));
    if (it != handlers_.end()) handler = it->second;
  }
  SendOptions options;
  options.rpc_id = request.rpc_id();
  options.flags = kFlagRpcReply;
  if (!handler) {
    drops_.Count(DropReason::kUnhandled);
    auto reply = ErrorReply(absl::UnimplementedError(
        absl::StrCat("no handler for message type ", static_cast<int>(request.type()))));
    (void)transport_->Send(request.source(), *reply, {}, options);
    return;
  }
  absl::StatusOr<RpcReply> reply = handler(request);
  if (!reply.ok() || reply->message == nullptr) {
    auto error = ErrorReply(reply.ok() ? absl::InternalError("handler returned no message")
                                       : reply.status());
    (void)transport_->Send(request.source(), *error, {}, options);
    return;
  }
  absl::Span<const uint8_t> page =
      reply->page.empty() ? reply->borrowed_page : absl::MakeConstSpan(reply->page);
  // A failed reply send is not retried: the caller's timeout covers it.
  (void)transport_->Send(request.source(), *reply->message, page, options);
}

absl::StatusOr<ReceivedMessage> RpcChannel::Call(NodeId dst, capnp::MessageBuilder& request,
                                                 absl::Duration timeout,
                                                 absl::Span<const uint8_t> page) {
  if (stop_.load()) return absl::CancelledError("RPC channel stopped");
  uint64_t id = next_id_.fetch_add(1);
  auto call = std::make_shared<PendingCall>();
  call->dst = dst;
  {
    absl::MutexLock lock(&mu_);
    pending_[id] = call;
  }
  SendOptions options;
  options.rpc_id = id;
  options.flags = kFlagRpcRequest;
  absl::Status s = transport_->Send(dst, request, page, options);
  if (!s.ok()) {
    absl::MutexLock lock(&mu_);
    pending_.erase(id);
    return s;
  }
  // Spin-then-block: a reply usually comes back within a few microseconds, and waking a thread
  // that slept on the condition costs more than that on a loaded VM. Bounded, yielding.
  const int64_t spin_until = absl::GetCurrentTimeNanos() + kReplySpinNs;
  while (!call->answered.load(std::memory_order_acquire) &&
         absl::GetCurrentTimeNanos() < spin_until) {
    sched_yield();
  }
  absl::MutexLock lock(&call->mu);
  auto done = [&call]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(call->mu) { return call->done; };
  if (!call->mu.AwaitWithTimeout(absl::Condition(&done), timeout)) {
    call->mu.Unlock();
    {
      absl::MutexLock plock(&mu_);
      pending_.erase(id);
    }
    call->mu.Lock();
    if (!call->done) {
      return absl::DeadlineExceededError(
          absl::StrCat("no reply from node ", dst, " within ", absl::FormatDuration(timeout)));
    }
  }
  return std::move(call->result);
}

}  // namespace amalgam::fabric
