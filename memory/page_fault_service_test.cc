// Real-userfaultfd tests of the page-fault service with host threads as the faulting threads,
// plus error paths and injected OS failures. Guest (KVM) tests: page_fault_service_kvm_test.cc.
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
#include "memory/fault_test_handler.h"

namespace amalgam::memory {
namespace {

using testing::RecordingFaultHandler;

constexpr uint64_t kPages = 16;

std::unique_ptr<GuestMemory> MakeMemory() {
  auto mem = GuestMemory::Create({{GuestAddress(0), kPages * kPageSize}});
  REQUIRE(mem.ok());
  return std::move(*mem);
}

std::vector<uint8_t> Pattern(uint32_t tag) {
  std::vector<uint8_t> page(kPageSize);
  for (uint32_t i = 0; i < kPageSize / 4; ++i) {
    uint32_t v = tag + i;
    std::memcpy(&page[i * 4], &v, 4);
  }
  return page;
}

uint32_t Tid() { return static_cast<uint32_t>(syscall(SYS_gettid)); }

uint64_t Metric(const PageFaultService& s, const char* name) { return s.Metrics().at(name); }

// Waits until a metric reaches a value (the service thread updates it asynchronously).
bool WaitMetric(const PageFaultService& s, const char* name, uint64_t at_least) {
  for (int i = 0; i < 3000; ++i) {
    if (Metric(s, name) >= at_least) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return false;
}

std::unique_ptr<PageFaultService> MakeService(GuestMemory* mem, RecordingFaultHandler* h,
                                              UffdOs* os = UffdOs::Real()) {
  PageFaultService::Options opt;
  opt.os = os;
  auto svc = PageFaultService::Create(mem, h, opt);
  INFO(svc.status().ToString());
  REQUIRE(svc.ok());
  REQUIRE((*svc)->RegisterAll().ok());
  REQUIRE((*svc)->Start().ok());
  return std::move(*svc);
}

TEST_CASE(
    "a host thread blocks on a missing page until InstallShared, then WP until MakeWritable") {
  auto mem = MakeMemory();
  RecordingFaultHandler h;
  PageFaultService* svc_ptr = nullptr;
  const std::vector<uint8_t> content = Pattern(0xC0DE0000);
  auto svc = MakeService(mem.get(), &h);
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
    reader_tid = Tid();
    seen0 = p[0];
    seen9 = p[9];
  });
  reader.join();
  CHECK(seen0 == 0xC0DE0000);
  CHECK(seen9 == 0xC0DE0009);

  uint32_t writer_tid = 0;
  std::thread writer([&] {
    writer_tid = Tid();
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
  auto mem = MakeMemory();
  RecordingFaultHandler h;
  PageFaultService* svc_ptr = nullptr;
  auto svc = MakeService(mem.get(), &h);
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
  auto mem = MakeMemory();
  RecordingFaultHandler h;
  auto svc = MakeService(mem.get(), &h);
  REQUIRE(svc->InstallShared(GuestAddress(0), Pattern(1)).ok());
  REQUIRE(svc->InstallShared(GuestAddress(0), Pattern(2)).ok());
  CHECK(Metric(*svc, "eexist") == 1);
  CHECK(Metric(*svc, "copies") == 1);
  CHECK(mem->ReadObj<uint32_t>(GuestAddress(0)).value() == 1);  // first install wins
}

TEST_CASE("two threads blocked on one page: both are reported; the second install is EEXIST") {
  auto mem = MakeMemory();
  RecordingFaultHandler h;  // records; the test resolves
  auto svc = MakeService(mem.get(), &h);
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
  for (const PageFault& f : faults) REQUIRE(svc->InstallShared(f.gpa, Pattern(0x700)).ok());
  ta.join();
  tb.join();
  CHECK(a == 0x700);
  CHECK(b == 0x701);
  CHECK(Metric(*svc, "eexist") == 1);
  CHECK(Metric(*svc, "copies") == 1);
}

TEST_CASE("Downgrade and Drop copy out the current page; Drop makes the next read fault again") {
  auto mem = MakeMemory();
  RecordingFaultHandler h;
  PageFaultService* svc_ptr = nullptr;
  std::atomic<uint32_t> next_tag{0x1000};
  auto svc = MakeService(mem.get(), &h);
  svc_ptr = svc.get();
  h.set_react([&](const PageFault& f) -> absl::Status {
    if (f.kind == FaultKind::kMissing) {
      return svc_ptr->InstallShared(f.gpa, Pattern(next_tag.load()));
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
  auto mem = MakeMemory();
  RecordingFaultHandler h;
  auto svc = MakeService(mem.get(), &h);
  const GuestAddress outside(kPages * kPageSize);
  CHECK(svc->Register(outside, kPageSize).code() == absl::StatusCode::kOutOfRange);
  CHECK(svc->Register(GuestAddress(0), kPageSize * (kPages + 1)).code() ==
        absl::StatusCode::kOutOfRange);
  CHECK(svc->Register(GuestAddress(1), kPageSize).code() == absl::StatusCode::kInvalidArgument);
  CHECK(svc->InstallShared(outside, Pattern(0)).code() == absl::StatusCode::kOutOfRange);
  CHECK(svc->InstallShared(GuestAddress(8), Pattern(0)).code() ==
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
  auto copied = (*uffd)->Copy(anon, Pattern(0).data(), kPageSize, false);
  CHECK_FALSE(copied.ok());
  CHECK(copied.status().message().find("UFFDIO_COPY") != absl::string_view::npos);
  CHECK((*uffd)->WriteProtect(anon, kPageSize, true).code() != absl::StatusCode::kOk);
  CHECK((*uffd)->Register(static_cast<uint8_t*>(anon) + 1, kPageSize).code() ==
        absl::StatusCode::kInvalidArgument);
  munmap(anon, kPageSize);
}

TEST_CASE("Shutdown with a fault pending releases the blocked thread; later calls fail cleanly") {
  auto mem = MakeMemory();
  RecordingFaultHandler h;  // never resolves
  auto svc = MakeService(mem.get(), &h);
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
  CHECK(svc->InstallShared(GuestAddress(0), Pattern(0)).code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(svc->Register(GuestAddress(0), kPageSize).code() == absl::StatusCode::kFailedPrecondition);
  svc->Shutdown();  // idempotent
}

// ---- injected OS failures ----

class FaultyOs : public UffdOs {
 public:
  int dev_open_errno = 0;
  int syscall_errno = 0;  // 0: "syscall" works (emulated through /dev/userfaultfd, see below)
  uint64_t hide_features = 0;
  unsigned long fail_ioctl = 0;
  int fail_ioctl_errno = 0;
  int madvise_errno = 0;
  int read_errno = 0;
  int eventfd_errno = 0;
  std::atomic<int> syscalls{0};

  int Open(const char* path, int flags) override {
    if (dev_open_errno) return -dev_open_errno;
    return UffdOs::Open(path, flags);
  }
  int UserfaultfdSyscall(int flags) override {
    syscalls++;
    if (syscall_errno) return -syscall_errno;
    // The real syscall is refused inside Bazel's sandbox; stand in with the device.
    int dev = UffdOs::Open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev < 0) return dev;
    int fd = UffdOs::Ioctl(dev, USERFAULTFD_IOC_NEW, reinterpret_cast<void*>(long{flags}));
    UffdOs::Close(dev);
    return fd;
  }
  int Ioctl(int fd, unsigned long request, void* arg) override {
    if (fail_ioctl == request) return -fail_ioctl_errno;
    int r = UffdOs::Ioctl(fd, request, arg);
    if (request == UFFDIO_API && r >= 0) static_cast<uffdio_api*>(arg)->features &= ~hide_features;
    return r;
  }
  int Madvise(void* addr, size_t len, int advice) override {
    if (madvise_errno) return -madvise_errno;
    return UffdOs::Madvise(addr, len, advice);
  }
  ssize_t Read(int fd, void* buf, size_t len) override {
    if (read_errno) return -read_errno;
    return UffdOs::Read(fd, buf, len);
  }
  int EventFd(unsigned int initval, int flags) override {
    if (eventfd_errno) return -eventfd_errno;
    return UffdOs::EventFd(initval, flags);
  }
};

TEST_CASE("open: no /dev/userfaultfd access and no syscall -> PERMISSION_DENIED naming the fix") {
  FaultyOs os;
  os.dev_open_errno = EACCES;
  os.syscall_errno = EPERM;
  auto uffd = Userfaultfd::Open(&os);
  REQUIRE_FALSE(uffd.ok());
  CHECK(uffd.status().code() == absl::StatusCode::kPermissionDenied);
  CHECK(uffd.status().message().find("vm.unprivileged_userfaultfd=1") != absl::string_view::npos);
  CHECK(uffd.status().message().find("/dev/userfaultfd") != absl::string_view::npos);
}

TEST_CASE("open: falls back to the syscall when /dev/userfaultfd is missing") {
  FaultyOs os;
  os.dev_open_errno = ENOENT;
  auto uffd = Userfaultfd::Open(&os);
  INFO(uffd.status().ToString());
  REQUIRE(uffd.ok());
  CHECK(os.syscalls.load() == 2);  // probe fd + real fd
}

TEST_CASE("open: a kernel without WP on shmem is refused, naming the feature") {
  FaultyOs os;
  os.hide_features = UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
  auto uffd = Userfaultfd::Open(&os);
  REQUIRE_FALSE(uffd.ok());
  CHECK(uffd.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(uffd.status().message().find("UFFD_FEATURE_WP_HUGETLBFS_SHMEM") != absl::string_view::npos);
  os.hide_features = UFFD_FEATURE_THREAD_ID;  // optional: works, without thread ids
  auto without_tid = Userfaultfd::Open(&os);
  REQUIRE(without_tid.ok());
  CHECK_FALSE((*without_tid)->has_thread_id());
}

TEST_CASE("injected ioctl / madvise / eventfd failures surface as errors and count nothing") {
  auto mem = MakeMemory();
  RecordingFaultHandler h;
  FaultyOs os;
  os.eventfd_errno = EMFILE;
  auto bad = PageFaultService::Create(mem.get(), &h, {&os});
  CHECK(bad.status().code() == absl::StatusCode::kResourceExhausted);
  os.eventfd_errno = 0;
  auto svc = MakeService(mem.get(), &h, &os);

  os.fail_ioctl = UFFDIO_COPY;
  os.fail_ioctl_errno = ENOMEM;
  CHECK(svc->InstallShared(GuestAddress(0), Pattern(0)).code() ==
        absl::StatusCode::kResourceExhausted);
  os.fail_ioctl_errno = EEXIST;  // "someone else resolved it": OK, counted, waiters woken
  CHECK(svc->InstallShared(GuestAddress(0), Pattern(0)).ok());
  CHECK(Metric(*svc, "eexist") == 1);
  CHECK(Metric(*svc, "wakes") == 1);

  os.fail_ioctl = UFFDIO_WRITEPROTECT;
  os.fail_ioctl_errno = EINVAL;
  std::vector<uint8_t> out(kPageSize);
  absl::Status s = svc->Downgrade(GuestAddress(0), absl::MakeSpan(out));
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(s.message().find("UFFDIO_WRITEPROTECT") != absl::string_view::npos);
  CHECK(svc->MakeWritable(GuestAddress(0)).code() == absl::StatusCode::kInvalidArgument);
  CHECK(Metric(*svc, "downgrades") == 0);
  CHECK(Metric(*svc, "wp_off") == 0);
  os.fail_ioctl = 0;

  os.madvise_errno = EINVAL;
  s = svc->Drop(GuestAddress(0), {});
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(s.message().find("MADV_REMOVE") != absl::string_view::npos);
  CHECK(Metric(*svc, "drops") == 0);
}

TEST_CASE("a failing uffd read stops the service thread; Shutdown still releases the faulter") {
  auto mem = MakeMemory();
  RecordingFaultHandler h;
  FaultyOs os;
  os.read_errno = EIO;
  auto svc = MakeService(mem.get(), &h, &os);
  volatile uint64_t* p =
      reinterpret_cast<volatile uint64_t*>(mem->GetHostAddress(GuestAddress(0), kPageSize).value());
  uint64_t seen = 1;
  std::thread reader([&] { seen = p[0]; });
  REQUIRE(WaitMetric(*svc, "read_errors", 1));
  CHECK(h.faults().empty());
  svc->Shutdown();
  reader.join();
  CHECK(seen == 0);
}

}  // namespace
}  // namespace amalgam::memory
