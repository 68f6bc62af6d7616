#include "vcpu/vcpu_state.h"

namespace amalgam::vcpu {

absl::StatusOr<VcpuState> CaptureVcpuState(const Vcpu& vcpu, absl::Span<const uint32_t> msr_indices,
                                           bool has_lapic) {
  return absl::UnimplementedError("CaptureVcpuState");
}
absl::Status RestoreVcpuState(Vcpu& vcpu, const VcpuState& state) {
  return absl::UnimplementedError("RestoreVcpuState");
}
std::vector<uint8_t> SerializeVcpuState(const VcpuState& state) { return {}; }
absl::StatusOr<VcpuState> DeserializeVcpuState(absl::Span<const uint8_t> bytes) {
  return absl::UnimplementedError("DeserializeVcpuState");
}

}  // namespace amalgam::vcpu
