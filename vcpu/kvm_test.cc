// Real /dev/kvm: opening, capabilities, errors, vCPU creation and per-vCPU CPUID.
#include "vcpu/kvm.h"

#include <grp.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include "vcpu/cpuid.h"
#include "vcpu/runner.h"
#include "vcpu/test_vm.h"
#include "vcpu/vcpu.h"
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

TEST_CASE("memory slots: alignment is checked, dirty log needs the flag") {
  auto kvm = Kvm::Open();
  REQUIRE(kvm.ok());
  auto vm = Vm::Create(**kvm);
  REQUIRE(vm.ok());
  void* ram = mmap(nullptr, 0x10000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(ram != MAP_FAILED);
  MemorySlot bad{0, 0x800, 0x1000, ram, 0};
  CHECK((*vm)->SetUserMemoryRegion(bad).code() == absl::StatusCode::kInvalidArgument);
  MemorySlot good{1, 0x100000, 0x10000, ram, 0};
  REQUIRE((*vm)->SetUserMemoryRegion(good).ok());
  CHECK((*vm)->GetMemorySlot(1).has_value());
  CHECK((*vm)->GetDirtyLog(1).status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK((*vm)->GetDirtyLog(7).status().code() == absl::StatusCode::kNotFound);
  MemorySlot overlap{2, 0x108000, 0x1000, ram, 0};
  CHECK_FALSE((*vm)->SetUserMemoryRegion(overlap).ok());
  REQUIRE((*vm)->DeleteMemoryRegion(1).ok());
  CHECK_FALSE((*vm)->GetMemorySlot(1).has_value());
  munmap(ram, 0x10000);
}

TEST_CASE("GetDirtyLog reports the pages a guest wrote") {
  testing::TestVmOptions opt;
  opt.ram_bytes = 0x100000;
  auto vm = testing::TestVm::Create(opt);
  REQUIRE(vm.ok());
  // Clear the log, then: mov byte [0x5000], 1 ; mov byte [0x9000], 1 ; hlt
  REQUIRE((*vm)->vm().GetDirtyLog(0).ok());
  (*vm)->Load(0x1000, {0xc6, 0x06, 0x00, 0x50, 0x01, 0xc6, 0x06, 0x00, 0x90, 0x01, 0xf4});
  REQUIRE((*vm)->SetRealMode(0, 0x1000).ok());
  REQUIRE((*vm)->vm().GetDirtyLog(0).ok());  // reset whatever Load touched
  VcpuRunner runner(&(*vm)->vcpu(), nullptr, nullptr);
  auto exit = runner.Run();
  REQUIRE(exit.ok());
  REQUIRE(exit->reason == VcpuExitReason::kHlt);
  auto log = (*vm)->vm().GetDirtyLog(0);
  REQUIRE(log.ok());
  REQUIRE(log->size() == 4);  // 256 pages
  CHECK(((*log)[0] >> 5) & 1);
  CHECK(((*log)[0] >> 9) & 1);
  CHECK_FALSE(((*log)[0] >> 6) & 1);
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
  // vCPU 1 runs: mov eax, 1 ; cpuid ; mov [0x500], ebx ; hlt
  (*vm)->Load(0x1000,
              {0x66, 0xb8, 0x01, 0x00, 0x00, 0x00, 0x0f, 0xa2, 0x66, 0x89, 0x1e, 0x00, 0x05, 0xf4});
  REQUIRE((*vm)->SetRealMode(1, 0x1000).ok());
  VcpuRunner runner(&(*vm)->vcpu(1), nullptr, nullptr);
  auto exit = runner.Run();
  REQUIRE(exit.ok());
  REQUIRE(exit->reason == VcpuExitReason::kHlt);
  uint32_t ebx;
  std::memcpy(&ebx, (*vm)->ram() + 0x500, 4);
  CHECK((ebx >> 24) == 1);
}

}  // namespace
}  // namespace amalgam::vcpu
