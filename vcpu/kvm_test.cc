// Real /dev/kvm: opening, capabilities, errors, vCPU creation and per-vCPU CPUID.
#include "vcpu/kvm.h"

#include <grp.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "vcpu/cpuid.h"
#include "vcpu/runner.h"
#include "vcpu/test_vm.h"
#include "vcpu/vcpu.h"
#include "vcpu/vcpu_state.h"
#include "vcpu/vm.h"

namespace amalgam::vcpu {
namespace {

TEST_CASE("Kvm opens /dev/kvm and reports capabilities") {
  auto kvm = Kvm::Open();
  INFO(kvm.status().ToString());
  REQUIRE(kvm.ok());
  CHECK((*kvm)->VcpuMmapSize() >= static_cast<int>(sizeof(kvm_run)));
  CHECK((*kvm)->CheckExtension(KVM_CAP_USER_MEMORY) > 0);
  CHECK((*kvm)->CheckExtension(0xfffffff) == 0);  // unknown capability
  absl::Status caps = (*kvm)->CheckRequiredCapabilities();
  INFO(caps.ToString());
  CHECK(caps.ok());
  CHECK((*kvm)->MaxVcpus() >= 1);
  auto cpuid = (*kvm)->GetSupportedCpuid();
  REQUIRE(cpuid.ok());
  CHECK(FindCpuidEntry(*cpuid, 0) != nullptr);
  CHECK(FindCpuidEntry(*cpuid, 1) != nullptr);
  auto msrs = (*kvm)->GetMsrIndexList();
  REQUIRE(msrs.ok());
  CHECK_FALSE(msrs->empty());
}

TEST_CASE("a missing capability is named in the error") {
  auto kvm = Kvm::Open();
  REQUIRE(kvm.ok());
  const Capability fake[] = {{KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
                             {0xffffff0, "KVM_CAP_FROM_THE_FUTURE"},
                             {0xffffff1, "KVM_CAP_ALSO_MISSING"}};
  absl::Status s = (*kvm)->CheckRequiredCapabilities(fake);
  CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(s.message().find("KVM_CAP_FROM_THE_FUTURE, KVM_CAP_ALSO_MISSING") !=
        absl::string_view::npos);
  CHECK(s.message().find("KVM_CAP_USER_MEMORY") == absl::string_view::npos);
}

TEST_CASE("a bad device path gives a clear error") {
  auto missing = Kvm::Open("/dev/no-such-kvm");
  CHECK(missing.status().code() == absl::StatusCode::kUnavailable);
  CHECK(missing.status().message().find("no /dev/no-such-kvm: KVM is not available on this host") !=
        absl::string_view::npos);
  auto not_kvm = Kvm::Open("/dev/null");
  CHECK(not_kvm.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(not_kvm.status().message().find("KVM_GET_API_VERSION") != absl::string_view::npos);
}

TEST_CASE("a user outside the kvm group gets a permission error naming the group") {
  if (access("/dev/kvm", F_OK) != 0) return;
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // Child: drop to nobody (no supplementary groups), try to open, report code + message.
    close(fds[0]);
    std::string out = "skip";
    if (setgroups(0, nullptr) == 0 && setgid(65534) == 0 && setuid(65534) == 0) {
      auto kvm = Kvm::Open();
      out = kvm.ok() ? "opened" : kvm.status().ToString();
    }
    (void)!write(fds[1], out.data(), out.size());
    _exit(0);
  }
  close(fds[1]);
  std::string got;
  char buf[512];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) got.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  INFO(got);
  if (got == "skip" || got == "opened") return;  // not root, or /dev/kvm is world-accessible
  CHECK(got.find("PERMISSION_DENIED") == 0);
  CHECK(got.find("`kvm` group") != std::string::npos);
}

TEST_CASE("CreateVcpu beyond the maximum is a clear error; duplicates too") {
  auto kvm = Kvm::Open();
  REQUIRE(kvm.ok());
  auto vm = Vm::Create(**kvm);
  REQUIRE(vm.ok());
  int max = (*kvm)->MaxVcpus();
  auto too_big = (*vm)->CreateVcpu(static_cast<uint32_t>(max));
  CHECK(too_big.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(too_big.status().message().find("KVM_CAP_MAX_VCPUS") != absl::string_view::npos);
  auto v0 = (*vm)->CreateVcpu(0);
  REQUIRE(v0.ok());
  auto dup = (*vm)->CreateVcpu(0);
  CHECK(dup.status().code() == absl::StatusCode::kAlreadyExists);
}

TEST_CASE("two vCPUs get their own APIC IDs in CPUID, and the guest sees them") {
  testing::TestVmOptions opt;
  opt.num_vcpus = 2;
  auto vm = testing::TestVm::Create(opt);
  REQUIRE(vm.ok());
  for (uint32_t i = 0; i < 2; ++i) {
    auto table = (*vm)->vcpu(i).GetCpuid2();
    REQUIRE(table.ok());
    const kvm_cpuid_entry2* leaf1 = FindCpuidEntry(*table, 1);
    REQUIRE(leaf1 != nullptr);
    CHECK((leaf1->ebx >> 24) == i);
    CHECK((leaf1->ecx >> 31) == 1);  // hypervisor bit
    const kvm_cpuid_entry2* topo = FindCpuidEntry(*table, 0xb, 0);
    if (topo != nullptr) CHECK(topo->edx == i);
  }
  // vCPU 1 runs: mov eax, 1 ; cpuid ; mov [0x500], ebx ;
  //             mov eax, 0xb ; mov ecx, 1 ; cpuid ; mov [0x504], ebx ; mov [0x508], ecx ;
  //             mov [0x50c], edx ; hlt
  (*vm)->Load(0x1000, {0x66, 0xb8, 0x01, 0x00, 0x00, 0x00, 0x0f, 0xa2, 0x66, 0x89, 0x1e,
                       0x00, 0x05, 0x66, 0xb8, 0x0b, 0x00, 0x00, 0x00, 0x66, 0xb9, 0x01,
                       0x00, 0x00, 0x00, 0x0f, 0xa2, 0x66, 0x89, 0x1e, 0x04, 0x05, 0x66,
                       0x89, 0x0e, 0x08, 0x05, 0x66, 0x89, 0x16, 0x0c, 0x05, 0xf4});
  REQUIRE((*vm)->SetRealMode(1, 0x1000).ok());
  VcpuRunner runner(&(*vm)->vcpu(1), nullptr, nullptr);
  auto exit = runner.Run();
  REQUIRE(exit.ok());
  REQUIRE(exit->reason == VcpuExitReason::kHlt);
  uint32_t ebx;
  std::memcpy(&ebx, (*vm)->ram() + 0x500, 4);
  CHECK((ebx >> 24) == 1);
  uint32_t topo[3];  // leaf 0xB sub-leaf 1: EBX, ECX, EDX
  std::memcpy(topo, (*vm)->ram() + 0x504, sizeof(topo));
  CHECK(topo[0] == 2);                // two logical processors at the core level
  CHECK(topo[1] == ((2u << 8) | 1));  // level type "core", sub-leaf 1
  CHECK(topo[2] == 1);                // x2APIC ID
}

TEST_CASE("Kick also ends a vCPU halted inside the kernel (in-kernel irqchip)") {
  testing::TestVmOptions opt;
  opt.irqchip = true;
  auto vm = testing::TestVm::Create(opt);
  REQUIRE(vm.ok());
  (*vm)->Load(0x1000, {0xfa, 0xf4, 0xeb, 0xfc});  // cli ; hlt ; jmp back
  REQUIRE((*vm)->SetRealMode(0, 0x1000).ok());
  VcpuRunner runner(&(*vm)->vcpu(), nullptr, nullptr);
  std::thread kicker([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    runner.Kick();
  });
  auto exit = runner.Run();
  kicker.join();
  REQUIRE(exit.ok());
  CHECK(exit->reason == VcpuExitReason::kKicked);
}

TEST_CASE("VcpuState of a never-run AP (UNINITIALIZED with the irqchip) round-trips") {
  testing::TestVmOptions opt;
  opt.irqchip = true;
  opt.num_vcpus = 2;
  auto a = testing::TestVm::Create(opt);
  REQUIRE(a.ok());
  auto all = (*a)->kvm().GetMsrIndexList();
  REQUIRE(all.ok());
  auto msrs = ReadableMsrs((*a)->vcpu(1), *all);
  REQUIRE(msrs.ok());
  auto st = CaptureVcpuState((*a)->vcpu(1), *msrs, true);
  REQUIRE(st.ok());
  CHECK(st->mp_state.mp_state == KVM_MP_STATE_UNINITIALIZED);
  auto b = testing::TestVm::Create(opt);
  REQUIRE(b.ok());
  // Make the target differ first, so the restore has something to undo.
  kvm_mp_state runnable{KVM_MP_STATE_RUNNABLE};
  REQUIRE((*b)->vcpu(1).SetMpState(runnable).ok());
  auto parsed = DeserializeVcpuState(SerializeVcpuState(*st));
  REQUIRE(parsed.ok());
  absl::Status s = RestoreVcpuState((*b)->vcpu(1), *parsed);
  INFO(s.ToString());
  REQUIRE(s.ok());
  auto mp = (*b)->vcpu(1).GetMpState();
  REQUIRE(mp.ok());
  CHECK(mp->mp_state == KVM_MP_STATE_UNINITIALIZED);
  auto lapic = (*b)->vcpu(1).GetLapic();
  REQUIRE(lapic.ok());
  uint32_t id;
  std::memcpy(&id, lapic->regs + 0x20, 4);
  CHECK((id >> 24) == 1);  // xAPIC ID register of vCPU 1
}

}  // namespace
}  // namespace amalgam::vcpu
