// Real KVM + real userfaultfd: a tiny real-mode guest touches pages of a registered GuestMemory
// region (slot 1 at GPA 0x80000, reached with DS=0x8000) while the page-fault service resolves.
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "memory/fault_testutil.h"
#include "memory/page_fault_service.h"
#include "vcpu/runner.h"
#include "vcpu/test_vm.h"

namespace amalgam::memory {
namespace {

using testing::Eventually;
using testing::PagePattern;
using testing::RecordingFaultHandler;

constexpr uint64_t kDataGpa = 0x80000;  // registered region: 16 pages
constexpr uint64_t kDataPages = 16;
constexpr uint64_t kEntry = 0x1000;
constexpr uint8_t kPort = 0x10;

// Collects the 32-bit values the guest writes to the port. Thread-safe.
class PortLog : public vcpu::BusDevice {
 public:
  void Read(uint64_t, absl::Span<uint8_t> d) override { std::fill(d.begin(), d.end(), 0); }
  void Write(uint64_t, absl::Span<const uint8_t> d) override {
    uint32_t v = 0;
    std::memcpy(&v, d.data(), std::min<size_t>(d.size(), 4));
    absl::MutexLock lock(&mu_);
    values_.push_back(v);
  }
  bool WaitFor(uint32_t value) {
    absl::MutexLock lock(&mu_);
    auto seen = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return std::find(values_.begin(), values_.end(), value) != values_.end();
    };
    return mu_.AwaitWithTimeout(absl::Condition(&seen), absl::Seconds(30));
  }
  std::vector<uint32_t> values() {
    absl::MutexLock lock(&mu_);
    return values_;
  }

 private:
  absl::Mutex mu_;
  std::vector<uint32_t> values_ ABSL_GUARDED_BY(mu_);
};

// A guest, its RAM in a GuestMemory registered with the service, and the vCPU on a thread.
struct Rig {
  std::unique_ptr<vcpu::testing::TestVm> vm;
  std::unique_ptr<GuestMemory> mem;
  RecordingFaultHandler handler;
  std::unique_ptr<PageFaultService> svc;
  std::shared_ptr<PortLog> port = std::make_shared<PortLog>();
  std::unique_ptr<vcpu::VcpuRunner> runner;
  std::thread thread;
  std::atomic<uint32_t> vcpu_tid{0};
  absl::StatusOr<vcpu::VcpuExit> exit = absl::UnknownError("not run");

  explicit Rig(const std::vector<uint8_t>& code) {
    vcpu::testing::TestVmOptions opt;
    opt.ram_bytes = kDataGpa;  // slot 0: [0, 0x80000) for code and stack
    auto v = vcpu::testing::TestVm::Create(opt);
    INFO(v.status().ToString());
    REQUIRE(v.ok());
    vm = std::move(*v);
    vm->Load(kEntry, code);
    REQUIRE(vm->SetRealMode(0, kEntry).ok());
    mem = testing::MakeTestMemory(kDataPages, GuestAddress(kDataGpa));
    const GuestRegion& r = mem->regions()[0];
    REQUIRE(
        vm->vm().SetUserMemoryRegion({1, r.start().value(), r.size(), r.host_address(), 0}).ok());
    svc = testing::StartService(mem.get(), &handler);
    auto pio = std::make_shared<vcpu::Bus>();
    REQUIRE(pio->Insert(port, kPort, 1).ok());
    runner = std::make_unique<vcpu::VcpuRunner>(&vm->vcpu(), pio, nullptr);
  }
  void Run() {
    thread = std::thread([this] {
      vcpu_tid = static_cast<uint32_t>(syscall(SYS_gettid));
      exit = runner->Run();
    });
  }
  // Only after every fault the guest can be blocked on was resolved.
  void StopAndJoin() {
    runner->Kick();
    thread.join();
  }
  ~Rig() {
    if (thread.joinable()) StopAndJoin();
    svc.reset();
  }
  uint32_t Peek(uint64_t gpa) { return mem->ReadObj<uint32_t>(GuestAddress(gpa)).value(); }
};

TEST_CASE("guest read of a missing page blocks until InstallShared; its write then WP-faults") {
  Rig rig({
      0xb8, 0x00, 0x80,                                       // mov ax, 0x8000
      0x8e, 0xd8,                                             // mov ds, ax
      0x66, 0xa1, 0x00,  0x00,                                // mov eax, [0]
      0x66, 0xe7, kPort,                                      // out kPort, eax
      0x66, 0xc7, 0x06,  0x04, 0x00, 0x44, 0x33, 0x22, 0x11,  // mov dword [4], 0x11223344
      0xf4,                                                   // hlt
  });
  const std::vector<uint8_t> content = PagePattern(0xC0DE0000);
  rig.handler.set_react([&](const PageFault& f) -> absl::Status {
    if (f.kind == FaultKind::kMissing) {
      return rig.svc->InstallShared(f.gpa, content);
    } else {
      return rig.svc->MakeWritable(f.gpa);
    }
  });
  rig.Run();
  rig.thread.join();
  INFO(rig.exit.status().ToString());
  REQUIRE(rig.exit.ok());
  INFO(rig.exit->ToString());
  CHECK(rig.exit->reason == vcpu::VcpuExitReason::kHlt);
  CHECK(rig.port->values() == std::vector<uint32_t>{0xC0DE0000});  // the guest saw our page
  CHECK(rig.Peek(kDataGpa + 4) == 0x11223344);                     // the write landed
  CHECK(rig.Peek(kDataGpa + 8) == 0xC0DE0002);                     // the rest is ours
  auto faults = rig.handler.faults();
  REQUIRE(faults.size() == 2);
  CHECK(faults[0].kind == FaultKind::kMissing);
  CHECK(faults[0].gpa == GuestAddress(kDataGpa));
  CHECK(faults[0].thread_id == rig.vcpu_tid.load());  // the vCPU thread, blocked in KVM_RUN
  CHECK(faults[1].kind == FaultKind::kWriteProtect);
  CHECK(faults[1].gpa == GuestAddress(kDataGpa));
  CHECK(faults[1].thread_id == rig.vcpu_tid.load());
  CHECK(rig.handler.errors().empty());
}

TEST_CASE("Downgrade while the guest increments a counter: protect, copy out, next write faults") {
  Rig rig({
      0xb8, 0x00, 0x80,              // mov ax, 0x8000
      0x8e, 0xd8,                    // mov ds, ax
      0x66, 0xff, 0x06, 0x00, 0x10,  // l: inc dword [0x1000]
      0xeb, 0xf9,                    // jmp l
  });
  const GuestAddress page(kDataGpa + kPageSize);
  std::atomic<bool> hold_wp{false};
  rig.handler.set_react([&](const PageFault& f) -> absl::Status {
    if (f.kind == FaultKind::kMissing) {
      return rig.svc->InstallZeroShared(f.gpa);
    } else if (!hold_wp) {
      return rig.svc->MakeWritable(f.gpa);
    }
    return absl::OkStatus();  // held: the test resolves it
  });
  rig.Run();
  REQUIRE(rig.handler.WaitForFaults(2));  // MISSING, then WP on the first increment
  REQUIRE(Eventually([&] { return rig.Peek(page.value()) > 200; }));
  hold_wp = true;
  std::vector<uint8_t> out(kPageSize);
  REQUIRE(rig.svc->Downgrade(page, absl::MakeSpan(out)).ok());
  uint32_t copied;
  std::memcpy(&copied, out.data(), 4);
  CHECK(copied > 200);
  REQUIRE(rig.handler.WaitForFaults(3));  // the guest's next increment faults
  auto faults = rig.handler.faults();
  CHECK(faults[2].kind == FaultKind::kWriteProtect);
  CHECK(faults[2].gpa == page);
  CHECK(faults[2].thread_id == rig.vcpu_tid.load());
  absl::SleepFor(absl::Milliseconds(50));
  CHECK(rig.Peek(page.value()) == copied);  // nothing was written after the copy-out
  REQUIRE(rig.svc->MakeWritable(page).ok());
  REQUIRE(Eventually([&] { return rig.Peek(page.value()) > copied + 100; }));
  rig.StopAndJoin();
  REQUIRE(rig.exit.ok());
  CHECK(rig.exit->reason == vcpu::VcpuExitReason::kKicked);
  CHECK(rig.svc->Metrics()["downgrades"] == 1);
  CHECK(rig.handler.errors().empty());
}

// Regression: with MADV_DONTNEED the memfd page would stay in the page cache, the guest would
// keep reading the stale value and never fault again. Drop uses MADV_REMOVE.
TEST_CASE("Drop removes the page: the guest's next read faults again and sees the new content") {
  Rig rig({
      0xb8, 0x00, 0x80,         // mov ax, 0x8000
      0x8e, 0xd8,               // mov ds, ax
      0x66, 0x31, 0xdb,         // xor ebx, ebx
      0x66, 0xa1, 0x00,  0x20,  // l: mov eax, [0x2000]
      0x66, 0x39, 0xd8,         // cmp eax, ebx
      0x74, 0xf7,               // je l
      0x66, 0x89, 0xc3,         // mov ebx, eax
      0x66, 0xe7, kPort,        // out kPort, eax
      0xeb, 0xef,               // jmp l
  });
  const GuestAddress page(kDataGpa + 2 * kPageSize);
  std::atomic<uint32_t> tag{0xA1A10000};
  rig.handler.set_react([&](const PageFault& f) -> absl::Status {
    if (f.kind != FaultKind::kMissing) return absl::InternalError("the guest only reads");
    return rig.svc->InstallShared(f.gpa, PagePattern(tag.load()));
  });
  rig.Run();
  REQUIRE(rig.port->WaitFor(0xA1A10000));
  tag = 0xB2B20000;
  std::vector<uint8_t> out(kPageSize);
  REQUIRE(rig.svc->Drop(page, absl::MakeSpan(out)).ok());
  uint32_t copied;
  std::memcpy(&copied, out.data(), 4);
  CHECK(copied == 0xA1A10000);
  REQUIRE(rig.port->WaitFor(0xB2B20000));  // refaulted, read the new page
  auto faults = rig.handler.faults();
  REQUIRE(faults.size() == 2);
  CHECK(faults[1].kind == FaultKind::kMissing);
  CHECK(faults[1].gpa == page);
  rig.StopAndJoin();
  auto m = rig.svc->Metrics();
  CHECK(m["drops"] == 1);
  CHECK(m["faults_missing_read"] == 2);
  CHECK(rig.handler.errors().empty());
}

TEST_CASE("Shutdown with the vCPU blocked on a fault releases it: it reads zeros and runs on") {
  Rig rig({
      0xb8, 0x00, 0x80,                                       // mov ax, 0x8000
      0x8e, 0xd8,                                             // mov ds, ax
      0x66, 0xa1, 0x00,  0x30,                                // mov eax, [0x3000]
      0x66, 0xe7, kPort,                                      // out kPort, eax
      0x66, 0xc7, 0x06,  0x04, 0x30, 0x44, 0x33, 0x22, 0x11,  // mov dword [0x3004], 0x11223344
      0xf4,                                                   // hlt
  });
  // The handler never resolves.
  rig.Run();
  REQUIRE(rig.handler.WaitForFaults(1));
  absl::SleepFor(absl::Milliseconds(20));
  CHECK(rig.port->values().empty());  // really blocked in KVM_RUN
  rig.svc->Shutdown();
  rig.thread.join();
  REQUIRE(rig.exit.ok());
  CHECK(rig.exit->reason == vcpu::VcpuExitReason::kHlt);
  CHECK(rig.port->values() == std::vector<uint32_t>{0});  // never installed: the memfd's zeros
  CHECK(rig.Peek(kDataGpa + 0x3004) == 0x11223344);       // no write protection left
  CHECK(rig.svc->Metrics()["released_on_shutdown"] == 1);
}

}  // namespace
}  // namespace amalgam::memory
