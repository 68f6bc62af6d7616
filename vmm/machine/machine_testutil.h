// Scaffolding for the Machine tests (tests only): a small machine on a synthetic kernel with its
// serial output captured, and a port device that records what the guest wrote.
// Thread-safety: BootTestMachine runs on the test thread (Catch2 REQUIREs); PortRecorder is
// thread-safe (the vCPU thread writes, the test reads).
#ifndef AMALGAM_VMM_MACHINE_MACHINE_TESTUTIL_H_
#define AMALGAM_VMM_MACHINE_MACHINE_TESTUTIL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "vcpu/bus.h"
#include "vmm/devices/test_util.h"
#include "vmm/machine/machine.h"

namespace amalgam::vmm::machine::testing {

// 32 MiB of RAM, `vcpus` vCPUs, no serial sink.
MachineConfig SmallConfig(const std::string& kernel, uint32_t vcpus = 1);

struct Booted {
  std::shared_ptr<devices::StringSink> sink = std::make_shared<devices::StringSink>();
  std::unique_ptr<Machine> vm;
};
// Machine::Create(SmallConfig(kernel, vcpus)) with the serial output going to `sink` (REQUIREs
// success); not started.
Booted BootTestMachine(const std::string& kernel, uint32_t vcpus = 1);

// Records the first byte of every write; reads return zeros.
class PortRecorder : public vcpu::BusDevice {
 public:
  void Read(uint64_t, absl::Span<uint8_t> data) override;
  void Write(uint64_t, absl::Span<const uint8_t> data) override;
  std::vector<uint8_t> got();

 private:
  absl::Mutex mu_;
  std::vector<uint8_t> got_ ABSL_GUARDED_BY(mu_);
};

}  // namespace amalgam::vmm::machine::testing

#endif  // AMALGAM_VMM_MACHINE_MACHINE_TESTUTIL_H_
