// Real-KVM tests of the run loop: tiny real-mode guests as machine code.
#include "vcpu/runner.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <thread>

#include "vcpu/regs.h"
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

TEST_CASE("out to a port reaches the bus device with the exact value and size") {
  auto vm = MakeVm({
      0xb0, 0x42,                          // mov al, 0x42
      0xe6, 0x10,                          // out 0x10, al
      0xb8, 0x34, 0x12,                    // mov ax, 0x1234
      0xba, 0xf8, 0x03,                    // mov dx, 0x3f8
      0xef,                                // out dx, ax
      0x66, 0xb8, 0x78, 0x56, 0x34, 0x12,  // mov eax, 0x12345678
      0x66, 0xef,                          // out dx, eax
      0xf4,                                // hlt
  });
  auto pio = std::make_shared<Bus>();
  auto dev10 = std::make_shared<RecordingDevice>();
  auto dev3f8 = std::make_shared<RecordingDevice>();
  REQUIRE(pio->Insert(dev10, 0x10, 1).ok());
  REQUIRE(pio->Insert(dev3f8, 0x3f8, 8).ok());
  VcpuRunner runner(&vm->vcpu(), pio, nullptr);
  auto exit = runner.Run();
  REQUIRE(exit.ok());
  CHECK(exit->reason == VcpuExitReason::kHlt);
  CHECK(exit->rip == kEntry + 20);  // after the hlt
  REQUIRE(dev10->accesses.size() == 1);
  CHECK(dev10->accesses[0].write);
  CHECK(dev10->accesses[0].data == std::vector<uint8_t>{0x42});
  REQUIRE(dev3f8->accesses.size() == 2);
  CHECK(dev3f8->accesses[0].offset == 0);
  CHECK(dev3f8->accesses[0].data == std::vector<uint8_t>{0x34, 0x12});
  CHECK(LittleEndian(dev3f8->accesses[1].data) == 0x12345678);
  CHECK(dev3f8->accesses[1].data.size() == 4);
  CHECK(runner.stats().io_exits == 3);
}

TEST_CASE("in returns the device's value to the guest, including rep ins/outs") {
  auto vm = MakeVm({
      0xe4, 0x20,              // in al, 0x20
      0xa2, 0x00, 0x05,        // mov [0x500], al
      0xba, 0x22, 0x00,        // mov dx, 0x22
      0x66, 0xed,              // in eax, dx
      0x66, 0xa3, 0x04, 0x05,  // mov [0x504], eax
      0xbe, 0x00, 0x06,        // mov si, 0x600
      0xb9, 0x04, 0x00,        // mov cx, 4
      0xba, 0x30, 0x00,        // mov dx, 0x30
      0xf3, 0x6e,              // rep outsb
      0xbf, 0x00, 0x07,        // mov di, 0x700
      0xb9, 0x03, 0x00,        // mov cx, 3
      0xba, 0x31, 0x00,        // mov dx, 0x31
      0xf3, 0x6c,              // rep insb
      0xf4,                    // hlt
  });
  vm->Load(0x600, {0xa1, 0xb2, 0xc3, 0xd4});
  auto pio = std::make_shared<Bus>();
  auto dev20 = std::make_shared<RecordingDevice>();
  dev20->read_value = 0x5a;
  auto dev22 = std::make_shared<RecordingDevice>();
  dev22->read_value = 0xdeadbeef;
  auto dev30 = std::make_shared<RecordingDevice>();
  dev30->read_value = 0x70;
  dev30->read_step = 1;
  REQUIRE(pio->Insert(dev20, 0x20, 1).ok());
  REQUIRE(pio->Insert(dev22, 0x22, 4).ok());
  REQUIRE(pio->Insert(dev30, 0x30, 2).ok());
  VcpuRunner runner(&vm->vcpu(), pio, nullptr);
  auto exit = runner.Run();
  REQUIRE(exit.ok());
  REQUIRE(exit->reason == VcpuExitReason::kHlt);
  CHECK(vm->ram()[0x500] == 0x5a);
  uint32_t v;
  std::memcpy(&v, vm->ram() + 0x504, 4);
  CHECK(v == 0xdeadbeef);
  // rep outsb: four 1-byte writes with the buffer's bytes, in order.
  std::vector<uint8_t> outs;
  for (const auto& a : dev30->accesses) {
    if (a.write) {
      CHECK(a.offset == 0);
      REQUIRE(a.data.size() == 1);
      outs.push_back(a.data[0]);
    }
  }
  CHECK(outs == std::vector<uint8_t>{0xa1, 0xb2, 0xc3, 0xd4});
  // rep insb: three reads from port 0x31 landed at 0x700.
  CHECK(vm->ram()[0x700] == 0x70);
  CHECK(vm->ram()[0x701] == 0x71);
  CHECK(vm->ram()[0x702] == 0x72);
}

TEST_CASE("MMIO to an unbacked GPA reaches the MMIO bus; unclaimed reads see all ones") {
  auto vm = MakeVm(
      {
          0xb8, 0x00, 0xd0,                    // mov ax, 0xd000
          0x8e, 0xd8,                          // mov ds, ax
          0xc7, 0x06, 0x10, 0x00, 0xef, 0xbe,  // mov word [0x10], 0xbeef   -> GPA 0xd0010
          0x66, 0xa1, 0x20, 0x00,              // mov eax, [0x20]           -> GPA 0xd0020
          0x8b, 0x1e, 0x00, 0x01,  // mov bx, [0x100]           -> GPA 0xd0100 (unclaimed)
          0x31, 0xc9,              // xor cx, cx
          0x8e, 0xd9,              // mov ds, cx
          0x66, 0xa3, 0x00, 0x05,  // mov [0x500], eax
          0x89, 0x1e, 0x04, 0x05,  // mov [0x504], bx
          0xf4,                    // hlt
      },
      {/*ram_bytes=*/0x80000});
  auto mmio = std::make_shared<Bus>();
  auto dev = std::make_shared<RecordingDevice>();
  dev->read_value = 0xcafef00d;
  REQUIRE(mmio->Insert(dev, 0xd0000, 0x100).ok());
  VcpuRunner runner(&vm->vcpu(), nullptr, mmio);
  auto exit = runner.Run();
  REQUIRE(exit.ok());
  REQUIRE(exit->reason == VcpuExitReason::kHlt);
  REQUIRE(dev->accesses.size() == 2);
  CHECK(dev->accesses[0].write);
  CHECK(dev->accesses[0].offset == 0x10);
  CHECK(dev->accesses[0].data == std::vector<uint8_t>{0xef, 0xbe});
  CHECK_FALSE(dev->accesses[1].write);
  CHECK(dev->accesses[1].offset == 0x20);
  CHECK(dev->accesses[1].data.size() == 4);
  uint32_t v;
  std::memcpy(&v, vm->ram() + 0x500, 4);
  CHECK(v == 0xcafef00d);
  uint16_t w;
  std::memcpy(&w, vm->ram() + 0x504, 2);
  CHECK(w == 0xffff);
  CHECK(runner.stats().mmio_exits == 3);
  CHECK(runner.stats().unclaimed_accesses == 1);
}

TEST_CASE("an IDT with limit 0 and ud2 is reported as a triple-fault shutdown") {
  // 32-bit protected mode (the PVH entry state), IDT limit 0: #UD -> #GP -> #DF -> shutdown.
  auto vm = MakeVm({});
  vm->Load(0x2000, {0x90, 0x0f, 0x0b});  // nop; ud2
  REQUIRE(SetupPvhEntry(vm->vcpu(), 0x2000, 0).ok());
  auto sregs = vm->vcpu().GetSregs();
  REQUIRE(sregs.ok());
  sregs->idt.base = 0;
  sregs->idt.limit = 0;
  REQUIRE(vm->vcpu().SetSregs(*sregs).ok());
  VcpuRunner runner(&vm->vcpu(), nullptr, nullptr);
  runner.set_guest_reader(vm->Reader());
  auto exit = runner.Run();
  REQUIRE(exit.ok());
  INFO(exit->ToString());
  CHECK(exit->reason == VcpuExitReason::kShutdown);
  CHECK(exit->raw_exit_reason == KVM_EXIT_SHUTDOWN);
}

TEST_CASE("popcnt in ring 0: internal error with RIP and bytes, or correct execution") {
  auto vm = MakeVm({
      0xbb, 0xff, 0x00,        // mov bx, 0xff
      0xf3, 0x0f, 0xb8, 0xc3,  // popcnt ax, bx   (at 0x1003)
      0xf4,                    // hlt
  });
  VcpuRunner runner(&vm->vcpu(), nullptr, nullptr);
  runner.set_guest_reader(vm->Reader());
  auto exit = runner.Run();
  REQUIRE(exit.ok());
  INFO(exit->ToString());
  if (exit->reason == VcpuExitReason::kInternalError) {
    // PVM (software virtualization) cannot emulate popcnt at CPL0.
    CHECK(exit->rip == kEntry + 3);
    REQUIRE(exit->instruction_bytes.size() >= 4);
    CHECK(exit->instruction_bytes[0] == 0xf3);
    CHECK(exit->instruction_bytes[1] == 0x0f);
    CHECK(exit->instruction_bytes[2] == 0xb8);
    CHECK(exit->ToString().find("f3 0f b8 c3") != std::string::npos);
  } else {
    // Hardware virtualization runs it natively.
    REQUIRE(exit->reason == VcpuExitReason::kHlt);
    auto regs = vm->vcpu().GetRegs();
    REQUIRE(regs.ok());
    CHECK((regs->rax & 0xffff) == 8);
  }
}

TEST_CASE("stats() is live while Run() is running on another thread") {
  auto vm = MakeVm({
      0xe6, 0x10,  // loop: out 0x10, al  (no device: unclaimed)
      0xeb, 0xfc,  // jmp loop
  });
  VcpuRunner runner(&vm->vcpu(), std::make_shared<Bus>(), nullptr);
  absl::StatusOr<VcpuExit> exit;
  std::thread vcpu_thread([&] { exit = runner.Run(); });
  // The counters must move while the vCPU is still inside Run() (no timing asserted: poll).
  uint64_t seen = 0;
  while (seen < 100) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    seen = runner.stats().io_exits;
  }
  runner.Kick();
  vcpu_thread.join();
  REQUIRE(exit.ok());
  CHECK(exit->reason == VcpuExitReason::kKicked);
  CHECK(runner.stats().io_exits >= seen);
  CHECK(runner.stats().unclaimed_accesses == runner.stats().io_exits);
}

TEST_CASE("Kick from another thread returns a spinning guest's Run, and is never lost") {
  auto vm = MakeVm({0xeb, 0xfe});  // jmp .
  VcpuRunner runner(&vm->vcpu(), nullptr, nullptr);

  SECTION("kick while inside KVM_RUN") {
    std::thread kicker([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      runner.Kick();
    });
    auto exit = runner.Run();
    kicker.join();
    REQUIRE(exit.ok());
    CHECK(exit->reason == VcpuExitReason::kKicked);
    CHECK(exit->rip == kEntry);
  }
  SECTION("kick before Run is not lost, and is consumed once") {
    runner.Kick();
    auto exit = runner.Run();
    REQUIRE(exit.ok());
    CHECK(exit->reason == VcpuExitReason::kKicked);
    // The next Run must really run again: kick it from a thread after a while.
    std::thread kicker([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      runner.Kick();
    });
    auto again = runner.Run();
    kicker.join();
    REQUIRE(again.ok());
    CHECK(again->reason == VcpuExitReason::kKicked);
    CHECK(runner.stats().interrupted >= 1);
  }
  SECTION("kicks racing with KVM_RUN entry at varied delays are never lost") {
    // A lost kick would hang Run() and time the test out. Delays from 0 to ~1 ms land the kick
    // before, during and after entry.
    for (int i = 0; i < 100; ++i) {
      std::thread kicker([&runner, i] {
        std::this_thread::sleep_for(std::chrono::microseconds((i * 37) % 1000));
        runner.Kick();
      });
      auto exit = runner.Run();
      kicker.join();
      REQUIRE(exit.ok());
      CHECK(exit->reason == VcpuExitReason::kKicked);
    }
  }
}

// A device that raises the VM-wide stop flag, like a debug-exit port.
class StopDevice : public BusDevice {
 public:
  explicit StopDevice(std::shared_ptr<StopFlag> stop) : stop_(std::move(stop)) {}
  void Read(uint64_t, absl::Span<uint8_t> data) override {}
  void Write(uint64_t, absl::Span<const uint8_t> data) override { stop_->Request(data[0]); }

 private:
  std::shared_ptr<StopFlag> stop_;
};

TEST_CASE("a device can stop the VM; the pending OUT is completed before Run returns") {
  auto vm = MakeVm({
      0xb0, 0x07,  // mov al, 7
      0xe6, 0xf4,  // out 0xf4, al
      0xeb, 0xfe,  // jmp .
  });
  auto stop = std::make_shared<StopFlag>();
  auto pio = std::make_shared<Bus>();
  REQUIRE(pio->Insert(std::make_shared<StopDevice>(stop), 0xf4, 1).ok());
  VcpuRunner runner(&vm->vcpu(), pio, nullptr, stop);
  auto exit = runner.Run();
  REQUIRE(exit.ok());
  CHECK(exit->reason == VcpuExitReason::kStopRequested);
  CHECK(exit->stop_code == 7);
  CHECK_FALSE(runner.io_pending());
  CHECK(exit->rip == kEntry + 4);  // the OUT retired
}

}  // namespace
}  // namespace amalgam::vcpu
