// Injected OS failures (through UffdOs) in Userfaultfd and PageFaultService, on a real uffd.
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
#include "memory/page_fault_service.h"

namespace amalgam::memory {
namespace {

using testing::Metric;
using testing::PagePattern;
using testing::RecordingFaultHandler;
using testing::StartService;
using testing::WaitMetric;

constexpr uint64_t kPages = 16;

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
  auto mem = testing::MakeTestMemory(kPages);
  RecordingFaultHandler h;
  FaultyOs os;
  os.eventfd_errno = EMFILE;
  auto bad = PageFaultService::Create(mem.get(), &h, {&os});
  CHECK(bad.status().code() == absl::StatusCode::kResourceExhausted);
  os.eventfd_errno = 0;
  auto svc = StartService(mem.get(), &h, &os);

  os.fail_ioctl = UFFDIO_COPY;
  os.fail_ioctl_errno = ENOMEM;
  CHECK(svc->InstallShared(GuestAddress(0), PagePattern(0)).code() ==
        absl::StatusCode::kResourceExhausted);
  os.fail_ioctl_errno = EEXIST;  // "someone else resolved it": OK, counted, waiters woken
  CHECK(svc->InstallShared(GuestAddress(0), PagePattern(0)).ok());
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
  auto mem = testing::MakeTestMemory(kPages);
  RecordingFaultHandler h;
  FaultyOs os;
  os.read_errno = EIO;
  auto svc = StartService(mem.get(), &h, &os);
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
