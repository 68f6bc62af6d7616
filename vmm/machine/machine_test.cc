// Machine tests on real KVM with tiny synthetic PVH guests (32-bit code at 1 MiB).
#include "vmm/machine/machine.h"

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>

#include "vmm/devices/test_util.h"
#include "vmm/loader/test_elf.h"

namespace amalgam::vmm::machine {
namespace {

std::string WriteKernel(const std::string& name, const std::vector<uint8_t>& code) {
  loader::TestElfOptions o;
  o.code = code;
  std::vector<uint8_t> elf = loader::BuildTestElf(o);
  const char* dir = std::getenv("TEST_TMPDIR");
  std::string path = std::string(dir ? dir : "/tmp") + "/" + name;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, elf.data(), elf.size()) == static_cast<ssize_t>(elf.size()));
  ::close(fd);
  return path;
}

struct Booted {
  std::shared_ptr<devices::StringSink> sink = std::make_shared<devices::StringSink>();
  std::unique_ptr<Machine> vm;
};

Booted Boot(const std::string& kernel, uint32_t vcpus = 1) {
  Booted b;
  MachineConfig c;
  c.kernel_path = kernel;
  c.memory_bytes = 32 << 20;
  c.vcpus = vcpus;
  c.serial_out = b.sink;
  auto vm = Machine::Create(c);
  INFO(vm.status().ToString());
  REQUIRE(vm.ok());
  b.vm = std::move(*vm);
  return b;
}

TEST_CASE("machine: a guest prints on COM1 and leaves through debug-exit") {
  Booted b = Boot(WriteKernel("hello.elf", loader::SerialThenExitCode("hi\n", 5)));
  CHECK(b.vm->Info().state == MachineState::kCreated);
  REQUIRE(b.vm->Start().ok());
  ExitOutcome out = b.vm->Wait();
  CHECK(out.kind == ExitKind::kDebugExit);
  CHECK(out.debug_exit_value == 5);
  CHECK(ExitStatusFor(out) == 11);
  CHECK(b.sink->str() == "hi\n");
  MachineInfo info = b.vm->Info();
  CHECK(info.state == MachineState::kStopped);
  CHECK(info.kernel_entry == 0x100000);
  REQUIRE(info.vcpu_info.size() == 1);
  CHECK(info.vcpu_info[0].state == VcpuRunState::kExited);
  CHECK(info.vcpu_info[0].exits >= 4);  // three characters and the debug-exit write
  CHECK(b.vm->Start().code() == absl::StatusCode::kFailedPrecondition);
}

// A device an embedder attaches between Create and Start: records what the guest wrote.
class Recorder : public vcpu::BusDevice {
 public:
  void Read(uint64_t, absl::Span<uint8_t> data) override {
    for (auto& b : data) b = 0;
  }
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override {
    absl::MutexLock lock(&mu_);
    if (!data.empty()) got_.push_back(data[0]);
  }
  std::vector<uint8_t> got() {
    absl::MutexLock lock(&mu_);
    return got_;
  }

 private:
  absl::Mutex mu_;
  std::vector<uint8_t> got_;
};

TEST_CASE("machine: embedders can attach their own devices before Start") {
  // mov al, 0x5a; out 0x99, al; then debug-exit 0.
  std::vector<uint8_t> code = {0xb0, 0x5a, 0xe6, 0x99, 0xb0, 0x00, 0xe6, 0xf4, 0xf4};
  Booted b = Boot(WriteKernel("custom.elf", code));
  auto rec = std::make_shared<Recorder>();
  REQUIRE(b.vm->pio_bus().Insert(rec, 0x99, 1).ok());
  CHECK(b.vm->pio_bus().Insert(rec, 0x3f8, 1).code() == absl::StatusCode::kAlreadyExists);
  REQUIRE(b.vm->Start().ok());
  CHECK(b.vm->Wait().kind == ExitKind::kDebugExit);
  CHECK(rec->got() == std::vector<uint8_t>{0x5a});
}

TEST_CASE("machine: APs waiting for SIPI do not keep a stopped VM alive") {
  Booted b = Boot(WriteKernel("smp.elf", loader::SerialThenExitCode("x", 0)), 2);
  REQUIRE(b.vm->Start().ok());
  ExitOutcome out = b.vm->Wait();
  CHECK(out.kind == ExitKind::kDebugExit);
  CHECK(b.vm->Info().vcpu_info.size() == 2);
}

TEST_CASE("machine: a triple fault stops the VM with the RIP") {
  // ud2 with no IDT: #UD -> #DF -> triple fault.
  Booted b = Boot(WriteKernel("ud2.elf", {0x0f, 0x0b}));
  REQUIRE(b.vm->Start().ok());
  ExitOutcome out = b.vm->Wait();
  CHECK(out.kind == ExitKind::kTripleFault);
  CHECK(out.detail.find("guest triple fault (KVM_EXIT_SHUTDOWN) at RIP=0x100000") == 0);
  CHECK(ExitStatusFor(out) == kExitTripleFault);
}

TEST_CASE("machine: the i8042 reset command stops the VM with reason reset") {
  // mov al, 0xfe; out 0x64, al; 1: hlt; jmp 1b
  Booted b = Boot(WriteKernel("reset.elf", {0xb0, 0xfe, 0xe6, 0x64, 0xf4, 0xeb, 0xfd}));
  REQUIRE(b.vm->Start().ok());
  ExitOutcome out = b.vm->Wait();
  CHECK(out.kind == ExitKind::kReset);
  CHECK(ExitStatusFor(out) == 0);
}

TEST_CASE("machine: pause parks every vCPU, resume continues, stop ends the VM") {
  // mov dx, 0x3f8; mov al, '.'; 1: out dx, al; jmp 1b  -- an endless stream of I/O exits.
  Booted b =
      Boot(WriteKernel("spin.elf", {0x66, 0xba, 0xf8, 0x03, 0xb0, '.', 0xee, 0xeb, 0xfd}), 2);
  CHECK(b.vm->Pause().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(b.vm->Info().vcpu_info[0].host_tid == 0);  // no thread yet
  REQUIRE(b.vm->Start().ok());
  // Let it make progress first.
  while (b.sink->str().size() < 10) {
    REQUIRE_FALSE(b.vm->WaitFor(absl::Milliseconds(1)).has_value());
  }
  REQUIRE(b.vm->Pause().ok());
  MachineInfo paused = b.vm->Info();
  CHECK(paused.state == MachineState::kPaused);
  CHECK(paused.vcpu_info[0].state == VcpuRunState::kPaused);
  CHECK(paused.vcpu_info[1].state == VcpuRunState::kPaused);
  const size_t printed = b.sink->str().size();
  CHECK_FALSE(b.vm->WaitFor(absl::Milliseconds(50)).has_value());
  CHECK(b.sink->str().size() == printed);  // no guest progress while paused
  CHECK(b.vm->Pause().code() == absl::StatusCode::kFailedPrecondition);
  REQUIRE(b.vm->Resume().ok());
  while (b.sink->str().size() == printed) {
    REQUIRE_FALSE(b.vm->WaitFor(absl::Milliseconds(1)).has_value());
  }
  // Exit counts are live while the vCPU runs (no kick needed to publish them).
  while (b.vm->Info().vcpu_info[0].io_exits <= paused.vcpu_info[0].io_exits) {
    REQUIRE_FALSE(b.vm->WaitFor(absl::Milliseconds(1)).has_value());
  }
  const MachineInfo running = b.vm->Info();
  CHECK(running.vcpu_info[0].host_tid != 0);
  CHECK(running.vcpu_info[0].host_cpu >= 0);
  CHECK(running.vcpu_info[0].exits >= running.vcpu_info[0].io_exits);
  b.vm->Stop("test says stop");
  ExitOutcome out = b.vm->Wait();
  CHECK(out.kind == ExitKind::kStopped);
  CHECK(out.detail == "test says stop");
  CHECK(b.vm->Info().state == MachineState::kStopped);
  CHECK(b.vm->Resume().code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("machine: the UART's interrupt reaches the guest through the in-kernel IOAPIC") {
  // irq_guest.S: IOAPIC pin 4 -> vector 0x30, IER = THRE, sti; hlt. Its handler exits with the
  // IIR interrupt id it read (2 = THR empty); 0x7e/0x7f mean a wrong vector / no interrupt.
  Booted b = Boot("vmm/machine/irq_guest.elf");
  REQUIRE(b.vm->Start().ok());
  std::optional<ExitOutcome> out = b.vm->WaitFor(absl::Seconds(45));
  if (!out.has_value()) {
    b.vm->Stop("no interrupt arrived");
    out = b.vm->Wait();
  }
  INFO(out->detail);
  CHECK(out->kind == ExitKind::kDebugExit);
  CHECK(out->debug_exit_value == 2);
}

TEST_CASE("machine: stop before start, and bad configs are one clear error") {
  Booted b = Boot(WriteKernel("never.elf", {0xf4}));
  b.vm->Stop("never started");
  REQUIRE(b.vm->WaitFor(absl::ZeroDuration()).has_value());
  CHECK(b.vm->Wait().kind == ExitKind::kStopped);

  MachineConfig c;
  c.kernel_path = "/nonexistent/kernel";
  c.memory_bytes = 32 << 20;
  auto missing = Machine::Create(c);
  REQUIRE_FALSE(missing.ok());
  CHECK(std::string(missing.status().message()).find("kernel /nonexistent/kernel: no such file") ==
        0);
  c.kernel_path = WriteKernel("ok.elf", {0xf4});
  c.kvm_device = "/nonexistent/kvm";
  auto nokvm = Machine::Create(c);
  REQUIRE_FALSE(nokvm.ok());
  CHECK(std::string(nokvm.status().message()).find("/nonexistent/kvm") != std::string::npos);
  c.kvm_device = "/dev/kvm";
  c.vcpus = 100000;
  auto many = Machine::Create(c);
  REQUIRE_FALSE(many.ok());
  CHECK(std::string(many.status().message()).find("KVM_CAP_MAX_VCPUS") != std::string::npos);
  c.vcpus = 1;
  c.memory_bytes = 512 << 10;  // the 1 MiB load address is outside RAM
  auto small = Machine::Create(c);
  REQUIRE_FALSE(small.ok());
  CHECK(std::string(small.status().message()).find("outside guest RAM") != std::string::npos);
}

}  // namespace
}  // namespace amalgam::vmm::machine
