// TestVm (tests only): a VM with one anonymous RAM slot at GPA 0 and vCPUs in real mode at
// CS:IP = 0:entry, for tiny machine-code guests. Not thread-safe; owns everything it creates.
#ifndef AMALGAM_VCPU_TEST_VM_H_
#define AMALGAM_VCPU_TEST_VM_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "vcpu/kvm.h"
#include "vcpu/runner.h"
#include "vcpu/vcpu.h"
#include "vcpu/vm.h"

namespace amalgam::vcpu::testing {

struct TestVmOptions {
  uint64_t ram_bytes = 1 << 20;  // slot 0 at GPA 0
  bool irqchip = false;          // without it, HLT exits to userspace
  uint32_t num_vcpus = 1;
};

class TestVm {
 public:
  static absl::StatusOr<std::unique_ptr<TestVm>> Create(const TestVmOptions& options = {});
  // Create, load `code` at `entry` and put vCPU 0 in real mode there.
  static absl::StatusOr<std::unique_ptr<TestVm>> CreateRealMode(uint64_t entry,
                                                                const std::vector<uint8_t>& code,
                                                                const TestVmOptions& options = {});
  ~TestVm();

  Kvm& kvm() { return *kvm_; }
  Vm& vm() { return *vm_; }
  Vcpu& vcpu(size_t i = 0) { return *vcpus_[i]; }
  uint8_t* ram() { return ram_; }
  uint64_t ram_bytes() const { return ram_bytes_; }

  // Copies bytes into RAM (aborts the test on an out-of-range write).
  void Load(uint64_t gpa, const std::vector<uint8_t>& bytes);
  // Real mode, CS=DS=ES=SS=0, IP=entry, SP=0x7000.
  absl::Status SetRealMode(size_t vcpu, uint64_t entry);
  // A reader for VcpuRunner::set_guest_reader over this RAM.
  GuestPhysReader Reader();

 private:
  TestVm() = default;
  std::unique_ptr<Kvm> kvm_;
  std::unique_ptr<Vm> vm_;
  std::vector<std::unique_ptr<Vcpu>> vcpus_;
  uint8_t* ram_ = nullptr;
  uint64_t ram_bytes_ = 0;
};

// The first (up to) 8 bytes as a little-endian integer: what a guest `out` of that size wrote.
uint64_t LittleEndian(const std::vector<uint8_t>& bytes);

// A bus device that records every access and answers reads from a script.
class RecordingDevice : public BusDevice {
 public:
  struct Access {
    bool write;
    uint64_t offset;
    std::vector<uint8_t> data;
  };
  void Read(uint64_t offset, absl::Span<uint8_t> data) override;
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override;
  // Value returned by the next reads (little endian, truncated to the access size);
  // each read adds `read_step` afterwards.
  uint64_t read_value = 0;
  uint64_t read_step = 0;
  std::vector<Access> accesses;
};

}  // namespace amalgam::vcpu::testing

#endif  // AMALGAM_VCPU_TEST_VM_H_
