// The gRPC services of amalgam.proto (Lifecycle, Info, Metrics) over a VmController.
// Thread-safe (the controller is); the services share ownership of the controller.
#ifndef AMALGAM_VMM_API_SERVICE_H_
#define AMALGAM_VMM_API_SERVICE_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/service_type.h>

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "vmm/api/controller.h"

namespace amalgam::vmm::api {

// Canonical codes are numerically identical in absl and gRPC.
grpc::Status ToGrpcStatus(const absl::Status& status);

// One instance of each service, ready for grpc::ServerBuilder::RegisterService.
std::vector<std::unique_ptr<grpc::Service>> MakeApiServices(
    std::shared_ptr<VmController> controller);

}  // namespace amalgam::vmm::api

#endif  // AMALGAM_VMM_API_SERVICE_H_
