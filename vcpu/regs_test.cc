// Real-KVM tests of the PVH and long-mode register set-up helpers.
#include "vcpu/regs.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <thread>

#include "vcpu/runner.h"
#include "vcpu/test_vm.h"

namespace amalgam::vcpu {
namespace {

using testing::LittleEndian;
using testing::RecordingDevice;
using testing::TestVm;

constexpr uint64_t kEntry = 0x1000;

std::unique_ptr<TestVm> MakeVm(const std::vector<uint8_t>& code, testing::TestVmOptions opt = {}) {
  auto vm = TestVm::CreateRealMode(kEntry, code, opt);
  INFO(vm.status().ToString());
  REQUIRE(vm.ok());
  return std::move(*vm);
}

TEST_CASE("PVH entry: 32-bit protected mode with EBX = start_info") {
  auto vm = MakeVm({});
  vm->Load(0x2000, {
                       0x89, 0xd8,  // mov eax, ebx
                       0xe7, 0x10,  // out 0x10, eax
                       0xf4,        // hlt
                   });
  REQUIRE(SetupPvhEntry(vm->vcpu(), 0x2000, 0x6000).ok());
  auto pio = std::make_shared<Bus>();
  auto dev = std::make_shared<RecordingDevice>();
  REQUIRE(pio->Insert(dev, 0x10, 4).ok());
  VcpuRunner runner(&vm->vcpu(), pio, nullptr);
  auto exit = runner.Run();
  REQUIRE(exit.ok());
  CHECK(exit->reason == VcpuExitReason::kHlt);
  REQUIRE(dev->accesses.size() == 1);
  CHECK(LittleEndian(dev->accesses[0].data) == 0x6000);
  auto sregs = vm->vcpu().GetSregs();
  REQUIRE(sregs.ok());
  CHECK((sregs->cr0 & 1) == 1);
  CHECK((sregs->cr0 & 0x80000000u) == 0);
  CHECK(sregs->cs.db == 1);
}

// Sets up long mode with identity tables over the test VM's RAM, code at `entry`.
void EnterLongMode(TestVm& vm, uint64_t entry) {
  LongModeConfig config;
  config.entry = entry;
  config.stack = 0x300000;
  config.identity_map_bytes = vm.ram_bytes();
  uint8_t* ram = vm.ram();
  uint64_t ram_bytes = vm.ram_bytes();
  REQUIRE(SetupLongMode(vm.vcpu(), config, [&](uint64_t gpa, absl::Span<const uint8_t> data) {
            if (gpa > ram_bytes || data.size() > ram_bytes - gpa) {
              return absl::OutOfRangeError("write");
            }
            std::memcpy(ram + gpa, data.data(), data.size());
            return absl::OkStatus();
          }).ok());
}

TEST_CASE("internal error in long mode: instruction bytes found through the page tables") {
  auto vm = MakeVm({}, {/*ram_bytes=*/4 << 20});
  vm->Load(0x200000, {
                         0xbb, 0xff, 0x00, 0x00, 0x00,  // mov ebx, 0xff
                         0xf3, 0x0f, 0xb8, 0xc3,        // popcnt eax, ebx  (at 0x200005)
                         0xf4,                          // hlt
                     });
  EnterLongMode(*vm, 0x200000);
  VcpuRunner runner(&vm->vcpu(), nullptr, nullptr);
  runner.set_guest_reader(vm->Reader());
  auto exit = runner.Run();
  REQUIRE(exit.ok());
  INFO(exit->ToString());
  if (exit->reason == VcpuExitReason::kInternalError) {
    CHECK(exit->rip == 0x200005);
    REQUIRE(exit->instruction_bytes.size() >= 4);
    CHECK(exit->instruction_bytes[0] == 0xf3);
    CHECK(exit->instruction_bytes[3] == 0xc3);
  } else {
    REQUIRE(exit->reason == VcpuExitReason::kHlt);
    CHECK((vm->vcpu().GetRegs()->rax & 0xff) == 8);
  }
}

TEST_CASE("long mode set-up runs 64-bit code above 4 GiB-style addressing") {
  auto vm = MakeVm({}, {/*ram_bytes=*/4 << 20});
  // movabs rax, 0x1122334455667788; mov rcx, rax; shr rcx, 32; out 0x10, eax; mov eax, ecx;
  // out 0x10, eax; hlt
  vm->Load(0x200000, {0x48, 0xb8, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,  //
                      0x48, 0x89, 0xc1,                                            //
                      0x48, 0xc1, 0xe9, 0x20,                                      //
                      0xe7, 0x10,                                                  //
                      0x89, 0xc8,                                                  //
                      0xe7, 0x10,                                                  //
                      0xf4});
  LongModeConfig config;
  config.entry = 0x200000;
  config.stack = 0x300000;
  config.identity_map_bytes = 4 << 20;
  uint8_t* ram = vm->ram();
  uint64_t ram_bytes = vm->ram_bytes();
  REQUIRE(SetupLongMode(vm->vcpu(), config, [&](uint64_t gpa, absl::Span<const uint8_t> data) {
            if (gpa + data.size() > ram_bytes) {
              return absl::OutOfRangeError("write");
            }
            std::memcpy(ram + gpa, data.data(), data.size());
            return absl::OkStatus();
          }).ok());
  auto pio = std::make_shared<Bus>();
  auto dev = std::make_shared<RecordingDevice>();
  REQUIRE(pio->Insert(dev, 0x10, 4).ok());
  VcpuRunner runner(&vm->vcpu(), pio, nullptr);
  auto exit = runner.Run();
  REQUIRE(exit.ok());
  INFO(exit->ToString());
  CHECK(exit->reason == VcpuExitReason::kHlt);
  REQUIRE(dev->accesses.size() == 2);
  CHECK(LittleEndian(dev->accesses[0].data) == 0x55667788);
  CHECK(LittleEndian(dev->accesses[1].data) == 0x11223344);
  auto sregs = vm->vcpu().GetSregs();
  REQUIRE(sregs.ok());
  CHECK((sregs->efer & 0x400) != 0);  // LMA
}

}  // namespace
}  // namespace amalgam::vcpu
