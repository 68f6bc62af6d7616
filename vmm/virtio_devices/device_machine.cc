#include "vmm/virtio_devices/device_machine.h"

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace amalgam::vmm::virtio_devices {
namespace {
constexpr char kAttachFailure[] = "amalgam.vmm.virtio_devices/attach-failure";
}  // namespace

bool IsAttachFailure(const absl::Status& status) {
  return status.GetPayload(kAttachFailure).has_value();
}

absl::StatusOr<std::unique_ptr<DeviceMachine>> DeviceMachine::Create(machine::MachineConfig config,
                                                                     const VirtioOptions& devices) {
  std::unique_ptr<DeviceMachine> dm(new DeviceMachine());
  absl::StatusOr<std::unique_ptr<VirtioDevices>> virtio = VirtioDevices::Create(devices);
  if (!virtio.ok()) return virtio.status();
  dm->virtio_ = *std::move(virtio);
  if (std::string words = dm->virtio_->KernelCmdline(); !words.empty()) {
    config.cmdline = config.cmdline.empty() ? words : absl::StrCat(config.cmdline, " ", words);
  }
  config.virtio_mmio = dm->virtio_->AcpiDevices();
  absl::StatusOr<std::unique_ptr<machine::Machine>> m = machine::Machine::Create(config);
  if (!m.ok()) return m.status();
  dm->machine_ = *std::move(m);
  machine::Machine& vm = *dm->machine_;
  if (absl::Status s = dm->virtio_->Attach(&vm.memory(), &vm.vm(), &vm.mmio_bus()); !s.ok()) {
    absl::Status failure(s.code(), absl::StrCat("attaching virtio devices: ", s.message()));
    failure.SetPayload(kAttachFailure, absl::Cord("1"));
    return failure;
  }
  return dm;
}

DeviceMachine::~DeviceMachine() {
  if (machine_ != nullptr) {
    // The devices may only leave the bus once no vCPU can reach them.
    machine_->Stop("VM destroyed");
    machine_->Wait();
  }
  virtio_.reset();
  machine_.reset();
}

}  // namespace amalgam::vmm::virtio_devices
