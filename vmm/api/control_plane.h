// ControlPlane: what `amalgam --api-socket PATH [--config FILE]` runs: a real VM backend
// (MachineBackend), the lifecycle controller and the API server, optionally creating and starting
// the VM from a JSON config file at once. Thread-safe; owns the server and the backend.
#ifndef AMALGAM_VMM_API_CONTROL_PLANE_H_
#define AMALGAM_VMM_API_CONTROL_PLANE_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "vmm/api/controller.h"
#include "vmm/api/machine_backend.h"
#include "vmm/api/server.h"
#include "vmm/exit_outcome.h"

namespace amalgam::vmm::api {

struct ControlPlaneOptions {
  ApiServerOptions server;
  // A VmConfig JSON file: if set, the VM is created from it and started before Start returns.
  std::string config_file;
};

class ControlPlane {
 public:
  // Errors (bad config file, socket in use, TCP without TLS, ...) name the option and the fix;
  // nothing is left running or listening after an error.
  static absl::StatusOr<std::unique_ptr<ControlPlane>> Start(const ControlPlaneOptions& options);
  ~ControlPlane();

  // Blocks until the VM has stopped (through the API, by itself, or via Stop) and returns why;
  // the process exit status is vmm::ExitStatusFor(outcome). A VM never created counts as
  // stopped once Stop is called. The server keeps answering (Info, Wait) until destruction.
  ExitOutcome WaitForVmExit();
  // Stops the VM, or ends WaitForVmExit if there is none (e.g. from a SIGTERM handler thread).
  void Stop(const std::string& reason);

  VmController& controller() { return *controller_; }
  ApiServer& server() { return *server_; }

 private:
  ControlPlane() = default;

  MachineBackend* backend_ = nullptr;  // Owned by controller_.
  std::shared_ptr<VmController> controller_;
  std::unique_ptr<ApiServer> server_;
  absl::Mutex mu_;
  std::string stop_reason_ ABSL_GUARDED_BY(mu_);
  bool stop_requested_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace amalgam::vmm::api

#endif  // AMALGAM_VMM_API_CONTROL_PLANE_H_
