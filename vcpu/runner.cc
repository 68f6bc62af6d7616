#include "vcpu/runner.h"

namespace amalgam::vcpu {

const char* VcpuExitReasonName(VcpuExitReason reason) { return "?"; }
std::string VcpuExit::ToString() const { return ""; }
VcpuRunner::VcpuRunner(Vcpu* vcpu, std::shared_ptr<Bus> pio_bus, std::shared_ptr<Bus> mmio_bus,
                       std::shared_ptr<StopFlag> stop)
    : vcpu_(vcpu), pio_(std::move(pio_bus)), mmio_(std::move(mmio_bus)), stop_(std::move(stop)) {}
VcpuRunner::~VcpuRunner() = default;
absl::StatusOr<VcpuExit> VcpuRunner::Run() { return absl::UnimplementedError("Run"); }
void VcpuRunner::Kick() {}
absl::Status VcpuRunner::CompletePendingIo() {
  return absl::UnimplementedError("CompletePendingIo");
}
int VcpuRunner::KickSignal() { return 0; }

}  // namespace amalgam::vcpu
