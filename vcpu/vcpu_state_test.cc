#include "vcpu/vcpu_state.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <thread>

#include "vcpu/runner.h"
#include "vcpu/test_vm.h"

namespace amalgam::vcpu {
namespace {

using testing::TestVm;

// Real mode: count in ECX and in the dword at 0x500, forever.
const std::vector<uint8_t> kCounter = {
    0x66, 0x41,                    // 0x1000: inc ecx
    0x66, 0xff, 0x06, 0x00, 0x05,  // 0x1002: inc dword [0x500]
    0xeb, 0xf7,                    // 0x1007: jmp 0x1000
};

// Runs until kicked ~`ms` later.
VcpuExit RunFor(VcpuRunner& runner, int ms) {
  std::thread kicker([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    runner.Kick();
  });
  auto exit = runner.Run();
  kicker.join();
  REQUIRE(exit.ok());
  REQUIRE(exit->reason == VcpuExitReason::kKicked);
  return *exit;
}

// Kicks repeatedly until the guest has made progress past `above` (never asserts a timing: a
// loaded machine just needs more rounds).
void RunUntilEcxAbove(VcpuRunner& runner, uint32_t above) {
  for (int round = 0; round < 500; ++round) {
    RunFor(runner, 20);
    auto regs = runner.vcpu()->GetRegs();
    REQUIRE(regs.ok());
    if (static_cast<uint32_t>(regs->rcx) > above + 100) return;
  }
  FAIL("guest made no progress in 500 rounds");
}

uint32_t MemCounter(TestVm& vm) {
  uint32_t v;
  std::memcpy(&v, vm.ram() + 0x500, 4);
  return v;
}

TEST_CASE("VcpuState round trip: a counting guest continues in a new VM") {
  testing::TestVmOptions opt;
  opt.irqchip = true;
  auto a = TestVm::Create(opt);
  REQUIRE(a.ok());
  (*a)->Load(0x1000, kCounter);
  REQUIRE((*a)->SetRealMode(0, 0x1000).ok());
  VcpuRunner runner_a(&(*a)->vcpu(), nullptr, nullptr);
  RunUntilEcxAbove(runner_a, 0);
  REQUIRE(runner_a.CompletePendingIo().ok());

  auto all_msrs = (*a)->kvm().GetMsrIndexList();
  REQUIRE(all_msrs.ok());
  auto msrs = ReadableMsrs((*a)->vcpu(), *all_msrs);
  REQUIRE(msrs.ok());
  CHECK_FALSE(msrs->empty());
  auto captured = CaptureVcpuState((*a)->vcpu(), *msrs, /*has_lapic=*/true);
  INFO(captured.status().ToString());
  REQUIRE(captured.ok());
  const uint32_t ecx = static_cast<uint32_t>(captured->regs.rcx);
  const uint32_t mem = MemCounter(**a);
  INFO("stopped at ecx=" << ecx << " mem=" << mem);
  REQUIRE(ecx > 0);
  // The guest increments ECX first, so ECX == mem or mem + 1.
  REQUIRE(ecx - mem <= 1);
  CHECK(captured->has_lapic);
  CHECK(captured->msrs.size() == msrs->size());
  CHECK_FALSE(captured->cpuid.empty());

  std::vector<uint8_t> bytes = SerializeVcpuState(*captured);
  auto parsed = DeserializeVcpuState(bytes);
  REQUIRE(parsed.ok());
  CHECK(SerializeVcpuState(*parsed) == bytes);

  // A new VM: copy RAM, restore, resume.
  auto b = TestVm::Create(opt);
  REQUIRE(b.ok());
  std::memcpy((*b)->ram(), (*a)->ram(), (*a)->ram_bytes());
  absl::Status restored = RestoreVcpuState((*b)->vcpu(), *parsed);
  INFO(restored.ToString());
  REQUIRE(restored.ok());
  auto regs = (*b)->vcpu().GetRegs();
  REQUIRE(regs.ok());
  CHECK(std::memcmp(&*regs, &captured->regs, sizeof(kvm_regs)) == 0);
  auto sregs = (*b)->vcpu().GetSregs();
  REQUIRE(sregs.ok());
  CHECK(sregs->cs.base == captured->sregs.cs.base);
  CHECK(sregs->cr0 == captured->sregs.cr0);

  VcpuRunner runner_b(&(*b)->vcpu(), nullptr, nullptr);
  RunUntilEcxAbove(runner_b, ecx);
  auto after = (*b)->vcpu().GetRegs();
  REQUIRE(after.ok());
  const uint32_t ecx2 = static_cast<uint32_t>(after->rcx);
  const uint32_t mem2 = MemCounter(**b);
  INFO("resumed to ecx=" << ecx2 << " mem=" << mem2);
  CHECK(ecx2 > ecx);
  CHECK(mem2 > mem);
  CHECK(ecx2 - mem2 <= 1);  // the two counters stayed in step across the move
  CHECK(after->rip >= 0x1000);
  CHECK(after->rip < 0x1009);
}

VcpuState SampleState() {
  VcpuState st;
  st.cpuid.resize(3);
  st.cpuid[1].function = 1;
  st.cpuid[1].eax = 0x806f8;
  st.regs.rip = 0x1234;
  st.regs.rcx = 77;
  st.sregs.cr0 = 0x11;
  st.has_sregs2 = true;
  st.sregs2.cr0 = 0x11;
  st.fpu.fcw = 0x37f;
  st.xsave.assign(4096, 0);
  st.xsave[0] = 0x7f;
  st.has_xcrs = true;
  st.xcrs.nr_xcrs = 1;
  st.xcrs.xcrs[0].value = 7;
  st.has_lapic = true;
  st.lapic.regs[0x20] = 1;
  st.msrs.resize(2);
  st.msrs[0].index = 0x10;
  st.msrs[0].data = 99;
  st.msrs[1].index = 0xc0000080;
  st.mp_state.mp_state = KVM_MP_STATE_RUNNABLE;
  st.events.nmi.pending = 1;
  st.debugregs.dr7 = 0x400;
  return st;
}

TEST_CASE("KVM_SET_MSRS stopping early is reported with the refused MSR") {
  auto vm = TestVm::Create();
  REQUIRE(vm.ok());
  std::vector<kvm_msr_entry> entries(3);
  entries[0].index = 0x174;       // SYSENTER_CS: accepted
  entries[1].index = 0xdeadbeef;  // no such MSR
  entries[2].index = 0x175;
  absl::Status s = (*vm)->vcpu().SetMsrs(entries);
  INFO(s.ToString());
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(s.message().find("wrote 1 of 3") != absl::string_view::npos);
  CHECK(s.message().find("0xdeadbeef") != absl::string_view::npos);
  const uint32_t bogus[] = {0x174, 0xdeadbeef};
  auto readable = ReadableMsrs((*vm)->vcpu(), bogus);
  REQUIRE(readable.ok());
  CHECK(*readable == std::vector<uint32_t>{0x174});
}

TEST_CASE("codec: round trip preserves every field") {
  VcpuState st = SampleState();
  auto bytes = SerializeVcpuState(st);
  auto back = DeserializeVcpuState(bytes);
  REQUIRE(back.ok());
  CHECK(back->cpuid.size() == 3);
  CHECK(back->cpuid[1].eax == 0x806f8);
  CHECK(back->regs.rip == 0x1234);
  CHECK(back->has_sregs2);
  CHECK(back->fpu.fcw == 0x37f);
  CHECK(back->xsave.size() == 4096);
  CHECK(back->xsave[0] == 0x7f);
  CHECK(back->xcrs.xcrs[0].value == 7);
  CHECK(back->lapic.regs[0x20] == 1);
  REQUIRE(back->msrs.size() == 2);
  CHECK(back->msrs[0].data == 99);
  CHECK(back->msrs[1].index == 0xc0000080);
  CHECK(back->events.nmi.pending == 1);
  CHECK(back->debugregs.dr7 == 0x400);
  CHECK(SerializeVcpuState(*back) == bytes);

  VcpuState minimal;  // no optional records
  auto mb = SerializeVcpuState(minimal);
  auto mback = DeserializeVcpuState(mb);
  REQUIRE(mback.ok());
  CHECK_FALSE(mback->has_lapic);
  CHECK(mback->xsave.empty());
}

TEST_CASE("codec: every truncation and every single-byte corruption is an error") {
  auto bytes = SerializeVcpuState(SampleState());
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto r = DeserializeVcpuState(absl::MakeConstSpan(bytes.data(), n));
    REQUIRE_FALSE(r.ok());
  }
  // Flip one bit in each byte (stride to keep the test fast).
  for (size_t i = 0; i < bytes.size(); i += 7) {
    auto copy = bytes;
    copy[i] ^= 0x10;
    auto r = DeserializeVcpuState(copy);
    INFO("byte " << i);
    CHECK_FALSE(r.ok());
  }
  auto extra = bytes;
  extra.push_back(0);
  CHECK(DeserializeVcpuState(extra).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("codec: header errors have the right codes") {
  auto bytes = SerializeVcpuState(SampleState());
  auto bad_magic = bytes;
  bad_magic[0] = 'X';
  CHECK(DeserializeVcpuState(bad_magic).status().code() == absl::StatusCode::kInvalidArgument);
  auto bad_version = bytes;
  bad_version[8] = 9;
  CHECK(DeserializeVcpuState(bad_version).status().code() == absl::StatusCode::kUnimplemented);
  auto short_count = bytes;
  short_count[12] -= 1;  // one record fewer than present: trailing bytes
  CHECK(DeserializeVcpuState(short_count).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(DeserializeVcpuState({}).status().code() == absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace amalgam::vcpu
