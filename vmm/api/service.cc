#include "vmm/api/service.h"

#include <string>
#include <utility>

#include "vmm/api/amalgam.grpc.pb.h"

namespace amalgam::vmm::api {
namespace {

// Counts the request in the controller's metrics and converts the outcome.
grpc::Status Finish(VmController& controller, const char* method, const absl::Status& status) {
  controller.CountRequest(method, status.code());
  return ToGrpcStatus(status);
}

class LifecycleService final : public v1::Lifecycle::Service {
 public:
  explicit LifecycleService(std::shared_ptr<VmController> c) : c_(std::move(c)) {}

  grpc::Status Create(grpc::ServerContext*, const v1::VmConfig* req,
                      v1::CreateResponse* resp) override {
    absl::StatusOr<v1::VmInfo> info = c_->Create(*req);
    if (info.ok()) *resp->mutable_info() = *std::move(info);
    return Finish(*c_, "Create", info.status());
  }
  grpc::Status Start(grpc::ServerContext*, const v1::StartRequest*, v1::StartResponse*) override {
    return Finish(*c_, "Start", c_->Start());
  }
  grpc::Status Pause(grpc::ServerContext*, const v1::PauseRequest*, v1::PauseResponse*) override {
    return Finish(*c_, "Pause", c_->Pause());
  }
  grpc::Status Resume(grpc::ServerContext*, const v1::ResumeRequest*,
                      v1::ResumeResponse*) override {
    return Finish(*c_, "Resume", c_->Resume());
  }
  grpc::Status Shutdown(grpc::ServerContext*, const v1::ShutdownRequest*,
                        v1::ShutdownResponse* resp) override {
    absl::StatusOr<v1::VmExit> exit = c_->Shutdown();
    if (exit.ok()) *resp->mutable_exit() = *std::move(exit);
    return Finish(*c_, "Shutdown", exit.status());
  }
  grpc::Status Wait(grpc::ServerContext* ctx, const v1::WaitRequest* req,
                    v1::WaitResponse* resp) override {
    // The call's own gRPC deadline also bounds the wait, so a client never waits past it.
    absl::Time deadline = absl::FromChrono(ctx->deadline());
    if (req->timeout_ms() != 0) {
      deadline = std::min(deadline, absl::Now() + absl::Milliseconds(req->timeout_ms()));
    }
    absl::StatusOr<v1::VmExit> exit = c_->Wait(deadline, [ctx] { return ctx->IsCancelled(); });
    if (exit.ok()) *resp->mutable_exit() = *std::move(exit);
    return Finish(*c_, "Wait", exit.status());
  }

 private:
  const std::shared_ptr<VmController> c_;
};

class InfoService final : public v1::Info::Service {
 public:
  explicit InfoService(std::shared_ptr<VmController> c) : c_(std::move(c)) {}
  grpc::Status GetInfo(grpc::ServerContext*, const v1::InfoRequest*, v1::VmInfo* resp) override {
    *resp = c_->Info();
    return Finish(*c_, "GetInfo", absl::OkStatus());
  }

 private:
  const std::shared_ptr<VmController> c_;
};

class MetricsService final : public v1::Metrics::Service {
 public:
  explicit MetricsService(std::shared_ptr<VmController> c) : c_(std::move(c)) {}
  grpc::Status GetMetrics(grpc::ServerContext*, const v1::MetricsRequest*,
                          v1::MetricsResponse* resp) override {
    c_->CountRequest("GetMetrics", absl::StatusCode::kOk);
    for (v1::Metric& m : c_->Metrics()) *resp->add_metrics() = std::move(m);
    return grpc::Status::OK;
  }

 private:
  const std::shared_ptr<VmController> c_;
};

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

std::vector<std::unique_ptr<grpc::Service>> MakeApiServices(
    std::shared_ptr<VmController> controller) {
  std::vector<std::unique_ptr<grpc::Service>> out;
  out.push_back(std::make_unique<LifecycleService>(controller));
  out.push_back(std::make_unique<InfoService>(controller));
  out.push_back(std::make_unique<MetricsService>(std::move(controller)));
  return out;
}

}  // namespace amalgam::vmm::api
