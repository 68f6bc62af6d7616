#include "vcpu/regs.h"

namespace amalgam::vcpu {

kvm_segment FlatSegment(uint16_t selector, bool code, bool long_mode) { return kvm_segment{}; }
absl::Status SetupPvhEntry(Vcpu& vcpu, uint64_t entry, uint64_t start_info_gpa) {
  return absl::UnimplementedError("SetupPvhEntry");
}
uint64_t LongModePageTableBytes(uint64_t identity_map_bytes) { return 0; }
absl::Status SetupLongMode(Vcpu& vcpu, const LongModeConfig& config, const GuestPhysWriter& write) {
  return absl::UnimplementedError("SetupLongMode");
}

}  // namespace amalgam::vcpu
