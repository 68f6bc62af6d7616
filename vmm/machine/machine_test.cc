// Machine tests on real KVM with tiny synthetic PVH guests (32-bit code at 1 MiB).
#include "vmm/machine/machine.h"

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>

#include "vmm/loader/test_elf.h"
#include "vmm/machine/machine_testutil.h"

namespace amalgam::vmm::machine {
namespace {

using loader::WriteTestKernel;
using testing::Booted;
using testing::PortRecorder;

Booted Boot(const std::string& kernel, uint32_t vcpus = 1) {
  return testing::BootTestMachine(kernel, vcpus);
}

TEST_CASE("machine: a guest prints on COM1 and leaves through debug-exit") {
  Booted b = Boot(WriteTestKernel("hello.elf", loader::SerialThenExitCode("hi\n", 5)));
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

TEST_CASE("machine: guest RAM on transparent huge pages runs the same guest") {
  MachineConfig c = testing::SmallConfig(
      WriteTestKernel("hello_thp.elf", loader::SerialThenExitCode("thp\n", 7)));
  c.memory_backing = memory::GuestMemory::Backing::kPrivateHugePages;
  auto sink = std::make_shared<devices::StringSink>();
  c.serial_out = sink;
  auto vm = Machine::Create(c);
  INFO(vm.status().ToString());
  REQUIRE(vm.ok());
  CHECK((*vm)->memory().backing() == memory::GuestMemory::Backing::kPrivateHugePages);
  CHECK((*vm)->memory().regions()[0].memfd() == -1);
  REQUIRE((*vm)->Start().ok());
  ExitOutcome out = (*vm)->Wait();
  CHECK(out.kind == ExitKind::kDebugExit);
  CHECK(out.debug_exit_value == 7);
  CHECK(sink->str() == "thp\n");
}

TEST_CASE("machine: embedders can attach their own devices before Start") {
  // mov al, 0x5a; out 0x99, al; then debug-exit 0.
  std::vector<uint8_t> code = {0xb0, 0x5a, 0xe6, 0x99, 0xb0, 0x00, 0xe6, 0xf4, 0xf4};
  Booted b = Boot(WriteTestKernel("custom.elf", code));
  auto rec = std::make_shared<PortRecorder>();
  REQUIRE(b.vm->pio_bus().Insert(rec, 0x99, 1).ok());
  CHECK(b.vm->pio_bus().Insert(rec, 0x3f8, 1).code() == absl::StatusCode::kAlreadyExists);
  REQUIRE(b.vm->Start().ok());
  CHECK(b.vm->Wait().kind == ExitKind::kDebugExit);
  CHECK(rec->got() == std::vector<uint8_t>{0x5a});
}

TEST_CASE("machine: APs waiting for SIPI do not keep a stopped VM alive") {
  Booted b = Boot(WriteTestKernel("smp.elf", loader::SerialThenExitCode("x", 0)), 2);
  REQUIRE(b.vm->Start().ok());
  ExitOutcome out = b.vm->Wait();
  CHECK(out.kind == ExitKind::kDebugExit);
  CHECK(b.vm->Info().vcpu_info.size() == 2);
}

TEST_CASE("machine: a triple fault stops the VM with the RIP") {
  // ud2 with no IDT: #UD -> #DF -> triple fault.
  Booted b = Boot(WriteTestKernel("ud2.elf", {0x0f, 0x0b}));
  REQUIRE(b.vm->Start().ok());
  ExitOutcome out = b.vm->Wait();
  CHECK(out.kind == ExitKind::kTripleFault);
  CHECK(out.detail.find("guest triple fault (KVM_EXIT_SHUTDOWN) at RIP=0x100000") == 0);
  CHECK(ExitStatusFor(out) == kExitTripleFault);
}

TEST_CASE("machine: the i8042 reset command stops the VM with reason reset") {
  // mov al, 0xfe; out 0x64, al; 1: hlt; jmp 1b
  Booted b = Boot(WriteTestKernel("reset.elf", {0xb0, 0xfe, 0xe6, 0x64, 0xf4, 0xeb, 0xfd}));
  REQUIRE(b.vm->Start().ok());
  ExitOutcome out = b.vm->Wait();
  CHECK(out.kind == ExitKind::kReset);
  CHECK(ExitStatusFor(out) == 0);
}

TEST_CASE("machine: pause parks every vCPU, resume continues, stop ends the VM") {
  // mov dx, 0x3f8; mov al, '.'; 1: out dx, al; jmp 1b  -- an endless stream of I/O exits.
  Booted b =
      Boot(WriteTestKernel("spin.elf", {0x66, 0xba, 0xf8, 0x03, 0xb0, '.', 0xee, 0xeb, 0xfd}), 2);
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
  Booted b = Boot(WriteTestKernel("never.elf", {0xf4}));
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
  c.kernel_path = WriteTestKernel("ok.elf", {0xf4});
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
