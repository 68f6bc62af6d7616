// MachineBackend: the VmBackend of a single-node amalgam VM (vmm::machine::Machine with its
// virtio devices, built by vmm/virtio_devices' DeviceMachine as `amalgam`'s flags are).
// Thread-safety: as VmBackend requires (Machine is thread-safe; the pointer is set once in
// Create, under the controller's serialization, and read under mu_). Owns the DeviceMachine.
#ifndef AMALGAM_VMM_API_MACHINE_BACKEND_H_
#define AMALGAM_VMM_API_MACHINE_BACKEND_H_

#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "vmm/api/backend.h"
#include "vmm/machine/machine.h"
#include "vmm/virtio_devices/device_machine.h"

namespace amalgam::vmm::api {

// What a VmConfig asks vmm/virtio_devices' DeviceMachine (the builder `amalgam`'s flags use
// too) to build.
struct MachinePlan {
  machine::MachineConfig machine;
  virtio_devices::VirtioOptions devices;
};

// Translates the API's VmConfig; opens the serial/console output files. What this build cannot
// honour yet (more than one node, a second rng or console) is INVALID_ARGUMENT naming the field.
// `default_output` is where serial output goes when the config names no file (the process's
// stdout in `amalgam`).
absl::StatusOr<MachinePlan> ToMachinePlan(const v1::VmConfig& config,
                                          std::shared_ptr<devices::ByteSink> default_output);

// The API's view of why a Machine stopped.
v1::VmExit ToVmExit(const ExitOutcome& outcome);

class MachineBackend final : public VmBackend {
 public:
  // Serial output of a VM whose config names no file goes to stdout.
  MachineBackend();
  // ... or to `default_output` (null: dropped).
  explicit MachineBackend(std::shared_ptr<devices::ByteSink> default_output);
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
  std::shared_ptr<virtio_devices::DeviceMachine> GetBuilt();
  // Shares ownership of the DeviceMachine.
  std::shared_ptr<machine::Machine> Get();

  const std::shared_ptr<devices::ByteSink> default_output_;
  absl::Mutex mu_;
  // Set once by Create; the Machine itself is thread-safe, the device list immutable.
  std::shared_ptr<virtio_devices::DeviceMachine> built_ ABSL_GUARDED_BY(mu_);
  std::string serial_output_ ABSL_GUARDED_BY(mu_);
};

}  // namespace amalgam::vmm::api

#endif  // AMALGAM_VMM_API_MACHINE_BACKEND_H_
