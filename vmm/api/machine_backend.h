// MachineBackend: the VmBackend of a single-node amalgam VM (vmm::machine::Machine).
// Thread-safety: as VmBackend requires (Machine is thread-safe; the pointer is set once in
// Create, under the controller's serialization, and read under mu_). Owns the Machine.
#ifndef AMALGAM_VMM_API_MACHINE_BACKEND_H_
#define AMALGAM_VMM_API_MACHINE_BACKEND_H_

#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "vmm/api/backend.h"
#include "vmm/machine/machine.h"

namespace amalgam::vmm::api {

// Translates the API's VmConfig into the Machine's config. Fields this build cannot honour yet
// (initrd, devices, CPU templates, more than one node) are INVALID_ARGUMENT naming the field.
absl::StatusOr<machine::MachineConfig> ToMachineConfig(const v1::VmConfig& config);

// The API's view of why a Machine stopped.
v1::VmExit ToVmExit(const ExitOutcome& outcome);

class MachineBackend final : public VmBackend {
 public:
  MachineBackend() = default;
  // Stops the VM (if any) and joins its threads.
  ~MachineBackend() override;

  absl::Status Create(const v1::VmConfig& config) override;
  absl::Status Start() override;
  absl::Status Pause() override;
  absl::Status Resume() override;
  absl::Status Shutdown() override;
  std::optional<v1::VmExit> WaitForExit(absl::Duration timeout) override;
  void FillInfo(v1::VmInfo* info) override;
  void AppendMetrics(std::vector<v1::Metric>* out) override;

  // For tests and embedders: the machine (null before Create).
  machine::Machine* machine();

 private:
  absl::Mutex mu_;
  // Set once by Create; the Machine itself is thread-safe.
  std::shared_ptr<machine::Machine> machine_ ABSL_GUARDED_BY(mu_);
  std::string serial_output_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<machine::Machine> Get();
};

}  // namespace amalgam::vmm::api

#endif  // AMALGAM_VMM_API_MACHINE_BACKEND_H_
