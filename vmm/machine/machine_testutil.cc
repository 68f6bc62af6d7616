#include "vmm/machine/machine_testutil.h"

#include <catch2/catch.hpp>

namespace amalgam::vmm::machine::testing {

MachineConfig SmallConfig(const std::string& kernel, uint32_t vcpus) {
  MachineConfig c;
  c.kernel_path = kernel;
  c.memory_bytes = 32 << 20;
  c.vcpus = vcpus;
  return c;
}

Booted BootTestMachine(const std::string& kernel, uint32_t vcpus) {
  Booted b;
  MachineConfig c = SmallConfig(kernel, vcpus);
  c.serial_out = b.sink;
  auto vm = Machine::Create(c);
  INFO(vm.status().ToString());
  REQUIRE(vm.ok());
  b.vm = std::move(*vm);
  return b;
}

void PortRecorder::Read(uint64_t, absl::Span<uint8_t> data) {
  for (uint8_t& b : data) b = 0;
}

void PortRecorder::Write(uint64_t, absl::Span<const uint8_t> data) {
  absl::MutexLock lock(&mu_);
  if (!data.empty()) got_.push_back(data[0]);
}

std::vector<uint8_t> PortRecorder::got() {
  absl::MutexLock lock(&mu_);
  return got_;
}

}  // namespace amalgam::vmm::machine::testing
