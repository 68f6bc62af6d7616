// VmBackend: what the control plane needs from a VM (the VMM implements it; tests may fake it).
// Thread-safety: VmController never calls two of Create/Start/Pause/Resume/Shutdown/FillInfo/
// AppendMetrics at once, but WaitForExit may run concurrently with any of them.
#ifndef AMALGAM_VMM_API_BACKEND_H_
#define AMALGAM_VMM_API_BACKEND_H_

#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "vmm/api/amalgam.pb.h"

namespace amalgam::vmm::api {

class VmBackend {
 public:
  virtual ~VmBackend() = default;

  // Builds the VM (memory, vCPUs, devices, kernel loaded) from a validated config; does not run
  // it. Errors the user can fix are INVALID_ARGUMENT naming the field.
  virtual absl::Status Create(const v1::VmConfig& config) = 0;
  // Starts every vCPU.
  virtual absl::Status Start() = 0;
  // Returns once no vCPU is inside KVM_RUN.
  virtual absl::Status Pause() = 0;
  virtual absl::Status Resume() = 0;
  // Stops every vCPU (also a created-but-never-started VM) and returns once they are stopped.
  virtual absl::Status Shutdown() = 0;
  // The exit, once the VM has ended (by itself or by Shutdown); nullopt if it is still alive
  // after `timeout` (zero = just look).
  virtual std::optional<v1::VmExit> WaitForExit(absl::Duration timeout) = 0;
  // Fills `vcpus`, `memory` and `devices`; the controller owns the other fields.
  virtual void FillInfo(v1::VmInfo* info) = 0;
  // Appends the counters of every library the VM uses (vcpu, memory, vmm, virtio, fabric, ...).
  virtual void AppendMetrics(std::vector<v1::Metric>* out) = 0;
};

}  // namespace amalgam::vmm::api

#endif  // AMALGAM_VMM_API_BACKEND_H_
