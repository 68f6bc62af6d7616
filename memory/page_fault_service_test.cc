// Real-userfaultfd tests of the page-fault service with host threads as the faulting threads,
// plus error paths (injected OS failures: uffd_fault_injection_test.cc). Guest (KVM) tests:
// page_fault_service_kvm_test.cc.
#include "memory/page_fault_service.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "memory/fault_testutil.h"

namespace amalgam::memory {
namespace {

using testing::CurrentTid;
using testing::Metric;
using testing::PagePattern;
using testing::RecordingFaultHandler;
using testing::StartService;
using testing::WaitMetric;

constexpr uint64_t kPages = 16;

TEST_CASE("huge-page guest memory is refused: the service needs the 4 KiB memfd backing") {
  GuestMemory::Options options;
  options.backing = GuestMemory::Backing::kPrivateHugePages;
  auto mem = GuestMemory::Create({{GuestAddress(0), kPages * kPageSize}}, options);
  REQUIRE(mem.ok());
  RecordingFaultHandler h;
  auto svc = PageFaultService::Create(mem->get(), &h);
  REQUIRE_FALSE(svc.ok());
  CHECK(svc.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(svc.status().message().find("kSharedMemfd") != absl::string_view::npos);
}

TEST_CASE(
    "a host thread blocks on a missing page until InstallShared, then WP until MakeWritable") {
  auto mem = testing::MakeTestMemory(kPages);
  RecordingFaultHandler h;
  PageFaultService* svc_ptr = nullptr;
  const std::vector<uint8_t> content = PagePattern(0xC0DE0000);
  auto svc = StartService(mem.get(), &h);
  svc_ptr = svc.get();
  h.set_react([&](const PageFault& f) -> absl::Status {
    if (f.kind == FaultKind::kMissing) {
      return svc_ptr->InstallShared(f.gpa, content);
    } else {
      return svc_ptr->MakeWritable(f.gpa);
    }
  });
  REQUIRE(svc->uffd().has_thread_id());

  volatile uint32_t* p = reinterpret_cast<volatile uint32_t*>(
      mem->GetHostAddress(GuestAddress(3 * kPageSize), kPageSize).value());
  uint32_t reader_tid = 0, seen0 = 0, seen9 = 0;
  std::thread reader([&] {
    reader_tid = CurrentTid();
    seen0 = p[0];
    seen9 = p[9];
  });
  reader.join();
  CHECK(seen0 == 0xC0DE0000);
  CHECK(seen9 == 0xC0DE0009);

  uint32_t writer_tid = 0;
  std::thread writer([&] {
    writer_tid = CurrentTid();
    p[1] = 0x5555AAAA;
  });
  writer.join();
  CHECK(mem->ReadObj<uint32_t>(GuestAddress(3 * kPageSize + 4)).value() == 0x5555AAAA);

  auto faults = h.faults();
  REQUIRE(faults.size() == 2);
  CHECK(faults[0].kind == FaultKind::kMissing);
  CHECK_FALSE(faults[0].write);
  CHECK(faults[0].gpa == GuestAddress(3 * kPageSize));
  CHECK(faults[0].thread_id == reader_tid);
  CHECK(faults[1].kind == FaultKind::kWriteProtect);
  CHECK(faults[1].write);
  CHECK(faults[1].gpa == GuestAddress(3 * kPageSize));
  CHECK(faults[1].thread_id == writer_tid);
  // The woken writer can finish before the service thread counts its MakeWritable.
  REQUIRE(WaitMetric(*svc, "fault_service_count", 2));
  auto m = svc->Metrics();
  CHECK(m["faults_missing_read"] == 1);
  CHECK(m["faults_wp"] == 1);
  CHECK(m["copies"] == 1);
  CHECK(m["wp_off"] == 1);
  CHECK(m["fault_service_count"] == 2);
  uint64_t buckets = 0;
  for (auto& [k, v] : m) {
    if (k.rfind("fault_service_us_le_", 0) == 0) buckets += v;
  }
  CHECK(buckets == 2);
  CHECK(h.errors().empty());
}

TEST_CASE("zero-fill install reads zeros, is write-protected, and a write then lands") {
  auto mem = testing::MakeTestMemory(kPages);
  RecordingFaultHandler h;
  PageFaultService* svc_ptr = nullptr;
  auto svc = StartService(mem.get(), &h);
  svc_ptr = svc.get();
  h.set_react([&](const PageFault& f) -> absl::Status {
    if (f.kind == FaultKind::kMissing) {
      return svc_ptr->InstallZeroShared(f.gpa);
    } else {
      return svc_ptr->MakeWritable(f.gpa);
    }
  });
  volatile uint64_t* p = reinterpret_cast<volatile uint64_t*>(
      mem->GetHostAddress(GuestAddress(5 * kPageSize), kPageSize).value());
  uint64_t sum = 1;
  std::thread([&] {
    sum = 0;
    for (size_t i = 0; i < kPageSize / 8; ++i) sum |= p[i];
    p[7] = 77;
  }).join();
  CHECK(sum == 0);
  CHECK(p[7] == 77);
  auto faults = h.faults();
  REQUIRE(faults.size() == 2);
  CHECK(faults[0].kind == FaultKind::kMissing);
  CHECK(faults[1].kind == FaultKind::kWriteProtect);  // the zero page was installed read-only
  CHECK(Metric(*svc, "zero_installs") == 1);
  CHECK(h.errors().empty());
}

TEST_CASE("installing a page that is already present counts EEXIST and is not an error") {
  auto mem = testing::MakeTestMemory(kPages);
  RecordingFaultHandler h;
  auto svc = StartService(mem.get(), &h);
  REQUIRE(svc->InstallShared(GuestAddress(0), PagePattern(1)).ok());
  REQUIRE(svc->InstallShared(GuestAddress(0), PagePattern(2)).ok());
  CHECK(Metric(*svc, "eexist") == 1);
  CHECK(Metric(*svc, "copies") == 1);
  CHECK(mem->ReadObj<uint32_t>(GuestAddress(0)).value() == 1);  // first install wins
}

TEST_CASE("two threads blocked on one page: both are reported; the second install is EEXIST") {
  auto mem = testing::MakeTestMemory(kPages);
  RecordingFaultHandler h;  // records; the test resolves
  auto svc = StartService(mem.get(), &h);
  volatile uint32_t* p = reinterpret_cast<volatile uint32_t*>(
      mem->GetHostAddress(GuestAddress(6 * kPageSize), kPageSize).value());
  uint32_t a = 0, b = 0;
  std::thread ta([&] { a = p[0]; });
  std::thread tb([&] { b = p[1]; });
  REQUIRE(h.WaitForFaults(2));
  auto faults = h.faults();
  CHECK(faults[0].gpa == GuestAddress(6 * kPageSize));
  CHECK(faults[1].gpa == GuestAddress(6 * kPageSize));
  CHECK(faults[0].thread_id != faults[1].thread_id);
  for (const PageFault& f : faults) REQUIRE(svc->InstallShared(f.gpa, PagePattern(0x700)).ok());
  ta.join();
  tb.join();
  CHECK(a == 0x700);
  CHECK(b == 0x701);
  CHECK(Metric(*svc, "eexist") == 1);
  CHECK(Metric(*svc, "copies") == 1);
}

TEST_CASE("Downgrade and Drop copy out the current page; Drop makes the next read fault again") {
  auto mem = testing::MakeTestMemory(kPages);
  RecordingFaultHandler h;
  PageFaultService* svc_ptr = nullptr;
  std::atomic<uint32_t> next_tag{0x1000};
  auto svc = StartService(mem.get(), &h);
  svc_ptr = svc.get();
  h.set_react([&](const PageFault& f) -> absl::Status {
    if (f.kind == FaultKind::kMissing) {
      return svc_ptr->InstallShared(f.gpa, PagePattern(next_tag.load()));
    } else {
      return svc_ptr->MakeWritable(f.gpa);
    }
  });
  volatile uint32_t* p = reinterpret_cast<volatile uint32_t*>(
      mem->GetHostAddress(GuestAddress(2 * kPageSize), kPageSize).value());
  std::thread([&] { p[0] = 42; }).join();  // MISSING (write) then WP
  std::vector<uint8_t> out(kPageSize);
  REQUIRE(svc->Downgrade(GuestAddress(2 * kPageSize), absl::MakeSpan(out)).ok());
  uint32_t v;
  std::memcpy(&v, out.data(), 4);
  CHECK(v == 42);
  next_tag = 0x2000;
  REQUIRE(svc->Drop(GuestAddress(2 * kPageSize), absl::MakeSpan(out)).ok());
  std::memcpy(&v, out.data(), 4);
  CHECK(v == 42);
  uint32_t seen = 0;
  std::thread([&] { seen = p[0]; }).join();
  CHECK(seen == 0x2000);  // refaulted and saw the new content, not the stale 42
  auto m = svc->Metrics();
  CHECK(m["faults_missing_write"] == 1);
  CHECK(m["faults_missing_read"] == 1);
  CHECK(m["drops"] == 1);
  CHECK(m["downgrades"] == 1);
  // Downgrade / Drop of a page that is not present reads zeros and never faults.
  REQUIRE(svc->Downgrade(GuestAddress(9 * kPageSize), absl::MakeSpan(out)).ok());
  CHECK(std::all_of(out.begin(), out.end(), [](uint8_t b) { return b == 0; }));
  CHECK(h.errors().empty());
}

TEST_CASE("error paths: outside guest RAM, bad sizes, unregistered addresses") {
  auto mem = testing::MakeTestMemory(kPages);
  RecordingFaultHandler h;
  auto svc = StartService(mem.get(), &h);
  const GuestAddress outside(kPages * kPageSize);
  CHECK(svc->Register(outside, kPageSize).code() == absl::StatusCode::kOutOfRange);
  CHECK(svc->Register(GuestAddress(0), kPageSize * (kPages + 1)).code() ==
        absl::StatusCode::kOutOfRange);
  CHECK(svc->Register(GuestAddress(1), kPageSize).code() == absl::StatusCode::kInvalidArgument);
  CHECK(svc->InstallShared(outside, PagePattern(0)).code() == absl::StatusCode::kOutOfRange);
  CHECK(svc->InstallShared(GuestAddress(8), PagePattern(0)).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(svc->InstallShared(GuestAddress(0), std::vector<uint8_t>(10)).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(svc->MakeWritable(outside).code() == absl::StatusCode::kOutOfRange);
  std::vector<uint8_t> small(100);
  CHECK(svc->Downgrade(GuestAddress(0), absl::MakeSpan(small)).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(svc->Drop(outside, {}).code() == absl::StatusCode::kOutOfRange);
  CHECK(svc->Start().code() == absl::StatusCode::kFailedPrecondition);

  // A copy to memory that was never registered is refused by the kernel.
  auto uffd = Userfaultfd::Open();
  REQUIRE(uffd.ok());
  void* anon = mmap(nullptr, kPageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(anon != MAP_FAILED);
  auto copied = (*uffd)->Copy(anon, PagePattern(0).data(), kPageSize, false);
  CHECK_FALSE(copied.ok());
  CHECK(copied.status().message().find("UFFDIO_COPY") != absl::string_view::npos);
  CHECK((*uffd)->WriteProtect(anon, kPageSize, true).code() != absl::StatusCode::kOk);
  CHECK((*uffd)->Register(static_cast<uint8_t*>(anon) + 1, kPageSize).code() ==
        absl::StatusCode::kInvalidArgument);
  munmap(anon, kPageSize);
}

TEST_CASE("Shutdown with a fault pending releases the blocked thread; later calls fail cleanly") {
  auto mem = testing::MakeTestMemory(kPages);
  RecordingFaultHandler h;  // never resolves
  auto svc = StartService(mem.get(), &h);
  volatile uint64_t* p = reinterpret_cast<volatile uint64_t*>(
      mem->GetHostAddress(GuestAddress(4 * kPageSize), kPageSize).value());
  std::atomic<bool> done{false};
  uint64_t seen = 1;
  std::thread reader([&] {
    seen = p[3];
    done = true;
  });
  REQUIRE(h.WaitForFaults(1));
  absl::SleepFor(absl::Milliseconds(20));
  CHECK_FALSE(done.load());  // really blocked on the fault
  svc->Shutdown();
  reader.join();
  CHECK(seen == 0);  // never installed: the memfd's content
  CHECK(Metric(*svc, "released_on_shutdown") == 1);
  CHECK(svc->InstallShared(GuestAddress(0), PagePattern(0)).code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(svc->Register(GuestAddress(0), kPageSize).code() == absl::StatusCode::kFailedPrecondition);
  svc->Shutdown();  // idempotent
}

}  // namespace
}  // namespace amalgam::memory
