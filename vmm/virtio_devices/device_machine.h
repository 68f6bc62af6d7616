// DeviceMachine: a vmm::machine::Machine with its virtio devices attached, built the one way
// both `amalgam`'s flags and the control API's VmConfig use: open the device backends, add
// their `virtio_mmio.device=` words to the command line and their windows to the ACPI DSDT,
// build the Machine (kernel, initrd, CPU template, legacy devices), attach the devices to its
// MMIO bus with irqfds/ioeventfds. Not started.
// Ownership: owns both; the destructor stops the VM, takes the devices off the bus, then
// destroys the Machine. Thread-safety: machine() is thread-safe (see Machine); Create and the
// destructor from one thread.
#ifndef AMALGAM_VMM_VIRTIO_DEVICES_DEVICE_MACHINE_H_
#define AMALGAM_VMM_VIRTIO_DEVICES_DEVICE_MACHINE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "vmm/machine/machine.h"
#include "vmm/virtio_devices/virtio_devices.h"

namespace amalgam::vmm::virtio_devices {

// True for DeviceMachine::Create's errors that are not the user's (attaching to KVM failed).
bool IsAttachFailure(const absl::Status& status);

class DeviceMachine {
 public:
  // Errors the user can fix (a missing disk or kernel, a bad template) keep the code and
  // message of the library that found them; a failure to attach the devices to KVM (the VMM's
  // fault, not the user's) is "attaching virtio devices: ..." and IsAttachFailure().
  static absl::StatusOr<std::unique_ptr<DeviceMachine>> Create(machine::MachineConfig config,
                                                               const VirtioOptions& devices);
  ~DeviceMachine();
  DeviceMachine(const DeviceMachine&) = delete;
  DeviceMachine& operator=(const DeviceMachine&) = delete;

  machine::Machine& machine() { return *machine_; }
  const std::vector<AttachedDevice>& devices() const { return virtio_->devices(); }

 private:
  DeviceMachine() = default;
  std::unique_ptr<VirtioDevices> virtio_;
  std::unique_ptr<machine::Machine> machine_;
};

}  // namespace amalgam::vmm::virtio_devices

#endif  // AMALGAM_VMM_VIRTIO_DEVICES_DEVICE_MACHINE_H_
