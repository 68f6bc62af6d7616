#include "vmm/api/control_plane.h"

#include "absl/strings/str_cat.h"
#include "vmm/api/config.h"

namespace amalgam::vmm::api {

absl::StatusOr<std::unique_ptr<ControlPlane>> ControlPlane::Start(
    const ControlPlaneOptions& options) {
  std::unique_ptr<ControlPlane> cp(new ControlPlane());
  auto backend = std::make_unique<MachineBackend>();
  cp->backend_ = backend.get();
  cp->controller_ = std::make_shared<VmController>(std::move(backend));
  // The config is checked before the socket appears, so a typo never leaves a server behind.
  v1::VmConfig config;
  if (!options.config_file.empty()) {
    absl::StatusOr<v1::VmConfig> loaded = LoadVmConfigFile(options.config_file);
    if (!loaded.ok()) return loaded.status();
    if (absl::Status s = ValidateVmConfig(*loaded); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("config file \"", options.config_file, "\": ", s.message()));
    }
    config = *std::move(loaded);
  }
  absl::StatusOr<std::unique_ptr<ApiServer>> server =
      StartApiServer(options.server, cp->controller_);
  if (!server.ok()) return server.status();
  cp->server_ = *std::move(server);
  if (!options.config_file.empty()) {
    if (absl::StatusOr<v1::VmInfo> info = cp->controller_->Create(config); !info.ok()) {
      return absl::Status(info.status().code(), absl::StrCat("config file \"", options.config_file,
                                                             "\": ", info.status().message()));
    }
    if (absl::Status s = cp->controller_->Start(); !s.ok()) return s;
  }
  return cp;
}

ControlPlane::~ControlPlane() {
  // Stop serving before the VM goes away, so no call reaches a half-destroyed backend.
  if (server_ != nullptr) server_->Shutdown();
  if (controller_ != nullptr) {
    const v1::VmState s = controller_->state();
    if (s == v1::VM_STATE_CREATED || s == v1::VM_STATE_RUNNING || s == v1::VM_STATE_PAUSED) {
      (void)controller_->Shutdown();
    }
  }
}

void ControlPlane::Stop(const std::string& reason) {
  absl::MutexLock lock(&mu_);
  if (stop_requested_) return;
  stop_requested_ = true;
  stop_reason_ = reason.empty() ? "stop requested" : reason;
}

ExitOutcome ControlPlane::WaitForVmExit() {
  for (;;) {
    std::string reason;
    {
      absl::MutexLock lock(&mu_);
      // Wake at least every 100 ms to look at the VM (it may be created by a client meanwhile).
      mu_.AwaitWithTimeout(absl::Condition(&stop_requested_), absl::Milliseconds(100));
      if (stop_requested_) reason = stop_reason_;
    }
    const v1::VmState state = controller_->state();
    if (state == v1::VM_STATE_STOPPED) break;
    if (!reason.empty()) {
      if (state == v1::VM_STATE_NOT_CREATED) return ExitOutcome::Of(ExitKind::kStopped, reason);
      // The machine keeps the first stop reason: give it ours before the controller's.
      if (machine::Machine* m = backend_->machine()) m->Stop(reason);
      (void)controller_->Shutdown();
      break;
    }
  }
  machine::Machine* m = backend_->machine();
  if (m == nullptr) return ExitOutcome::Of(ExitKind::kStopped, "no VM was created");
  return m->Wait();
}

}  // namespace amalgam::vmm::api
