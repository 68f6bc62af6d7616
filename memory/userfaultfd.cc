#include "memory/userfaultfd.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "memory/guest_address.h"

namespace amalgam::memory {
namespace {

constexpr int kUffdFlags = O_CLOEXEC | O_NONBLOCK;

uint64_t Addr(const void* p) { return reinterpret_cast<uint64_t>(p); }

bool Aligned(const void* p, uint64_t len) {
  return (Addr(p) % kPageSize) == 0 && (len % kPageSize) == 0 && len > 0;
}

absl::Status AlignmentError(const char* what, const void* p, uint64_t len) {
  return absl::InvalidArgumentError(absl::StrCat(what, ": address 0x", absl::Hex(Addr(p)),
                                                 " and length ", len,
                                                 " must be non-empty multiples of 4096"));
}

// Opens a raw uffd: /dev/userfaultfd first (no sysctl or capability needed beyond access to the
// node, and it works inside Bazel's sandbox), then the syscall.
absl::StatusOr<int> OpenRaw(UffdOs* os) {
  int dev_err = 0;
  int dev = os->Open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
  if (dev >= 0) {
    int fd = os->Ioctl(dev, USERFAULTFD_IOC_NEW, reinterpret_cast<void*>(kUffdFlags));
    os->Close(dev);
    if (fd >= 0) return fd;
    dev_err = -fd;
  } else {
    dev_err = -dev;
  }
  int fd = os->UserfaultfdSyscall(kUffdFlags);
  if (fd >= 0) return fd;
  std::string msg = absl::StrCat("userfaultfd: /dev/userfaultfd failed (", strerror(dev_err),
                                 ") and userfaultfd(2) failed (", strerror(-fd), ")");
  if (-fd == EPERM || -fd == EACCES || dev_err == EACCES || dev_err == EPERM) {
    return absl::PermissionDeniedError(absl::StrCat(
        msg,
        ": give this user read/write access to /dev/userfaultfd, or run with CAP_SYS_PTRACE, "
        "or set sysctl vm.unprivileged_userfaultfd=1 (KVM faults are kernel-mode, so "
        "UFFD_USER_MODE_ONLY cannot be used)"));
  }
  if (-fd == ENOSYS) {
    return absl::UnimplementedError(
        absl::StrCat(msg, ": the kernel lacks CONFIG_USERFAULTFD; enable it"));
  }
  return UffdErrnoStatus(-fd, msg.c_str());
}

std::string FeatureNames(uint64_t bits) {
  std::vector<std::string> names;
  if (bits & UFFD_FEATURE_PAGEFAULT_FLAG_WP) names.push_back("UFFD_FEATURE_PAGEFAULT_FLAG_WP");
  if (bits & UFFD_FEATURE_WP_HUGETLBFS_SHMEM) names.push_back("UFFD_FEATURE_WP_HUGETLBFS_SHMEM");
  if (bits & UFFD_FEATURE_THREAD_ID) names.push_back("UFFD_FEATURE_THREAD_ID");
  if (bits & UFFD_FEATURE_WP_UNPOPULATED) names.push_back("UFFD_FEATURE_WP_UNPOPULATED");
  return absl::StrJoin(names, ", ");
}

}  // namespace

absl::Status UffdErrnoStatus(int err, const char* what) {
  std::string msg = absl::StrCat(what, ": ", strerror(err));
  switch (err) {
    case EINVAL:
    case EBADF:
      return absl::InvalidArgumentError(msg);
    case ENOENT:
    case ESRCH:
      return absl::NotFoundError(msg);
    case EEXIST:
      return absl::AlreadyExistsError(msg);
    case EPERM:
    case EACCES:
      return absl::PermissionDeniedError(msg);
    case ENOMEM:
    case EMFILE:
    case ENFILE:
      return absl::ResourceExhaustedError(msg);
    case EAGAIN:
    case EINTR:
      return absl::UnavailableError(msg);
    case EFAULT:
      return absl::OutOfRangeError(msg);
    case ENOSYS:
    case ENOTTY:
      return absl::UnimplementedError(msg);
    default:
      return absl::InternalError(msg);
  }
}

absl::StatusOr<std::unique_ptr<Userfaultfd>> Userfaultfd::Open(UffdOs* os) {
  // UFFDIO_API may be issued once per fd and fails outright if any requested feature is
  // unknown, so probe the supported set on a throw-away fd first.
  absl::StatusOr<int> probe = OpenRaw(os);
  if (!probe.ok()) return probe.status();
  uffdio_api api = {};
  api.api = UFFD_API;
  int r = os->Ioctl(*probe, UFFDIO_API, &api);
  os->Close(*probe);
  if (r < 0) return UffdErrnoStatus(-r, "UFFDIO_API (probe)");
  uint64_t offered = api.features;
  uint64_t missing = kRequiredFeatures & ~offered;
  if (missing != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("userfaultfd: the kernel does not offer ", FeatureNames(missing),
                     " (needed to write-protect memfd guest RAM; Linux >= 5.19 has them)"));
  }
  absl::StatusOr<int> fd = OpenRaw(os);
  if (!fd.ok()) return fd.status();
  api = {};
  api.api = UFFD_API;
  api.features = kRequiredFeatures | (kOptionalFeatures & offered);
  r = os->Ioctl(*fd, UFFDIO_API, &api);
  if (r < 0) {
    os->Close(*fd);
    return UffdErrnoStatus(
        -r, absl::StrCat("UFFDIO_API features=", FeatureNames(api.features)).c_str());
  }
  uint64_t granted = kRequiredFeatures | (kOptionalFeatures & offered);
  return std::unique_ptr<Userfaultfd>(new Userfaultfd(os, *fd, granted));
}

Userfaultfd::~Userfaultfd() { Close(); }

void Userfaultfd::Close() {
  if (fd_ >= 0) os_->Close(fd_);
  fd_ = -1;
}

absl::Status Userfaultfd::Check(int r, const char* what) const {
  if (r >= 0) return absl::OkStatus();
  return UffdErrnoStatus(-r, what);
}

absl::Status Userfaultfd::Register(void* addr, uint64_t len) {
  if (!Aligned(addr, len)) return AlignmentError("UFFDIO_REGISTER", addr, len);
  uffdio_register reg = {};
  reg.range.start = Addr(addr);
  reg.range.len = len;
  reg.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP;
  absl::Status s = Check(os_->Ioctl(fd_, UFFDIO_REGISTER, &reg), "UFFDIO_REGISTER MISSING|WP");
  if (!s.ok()) return s;
  const uint64_t need = (uint64_t{1} << _UFFDIO_COPY) | (uint64_t{1} << _UFFDIO_WRITEPROTECT) |
                        (uint64_t{1} << _UFFDIO_WAKE);
  if ((reg.ioctls & need) != need) {
    Unregister(addr, len).IgnoreError();
    return absl::FailedPreconditionError(
        absl::StrCat("UFFDIO_REGISTER: range 0x", absl::Hex(Addr(addr)),
                     " lacks UFFDIO_COPY/WRITEPROTECT/WAKE"
                     " (ioctls=0x",
                     absl::Hex(reg.ioctls), "); register shmem/memfd or anonymous memory"));
  }
  return absl::OkStatus();
}

absl::Status Userfaultfd::Unregister(void* addr, uint64_t len) {
  if (!Aligned(addr, len)) return AlignmentError("UFFDIO_UNREGISTER", addr, len);
  uffdio_range range = {Addr(addr), len};
  return Check(os_->Ioctl(fd_, UFFDIO_UNREGISTER, &range), "UFFDIO_UNREGISTER");
}

absl::StatusOr<bool> Userfaultfd::Copy(void* dst, const void* src, uint64_t len,
                                       bool write_protect) {
  if (!Aligned(dst, len)) return AlignmentError("UFFDIO_COPY", dst, len);
  for (;;) {
    uffdio_copy copy = {};
    copy.dst = Addr(dst);
    copy.src = Addr(src);
    copy.len = len;
    copy.mode = write_protect ? UFFDIO_COPY_MODE_WP : 0;
    int r = os_->Ioctl(fd_, UFFDIO_COPY, &copy);
    if (r >= 0) return true;
    if (r == -EEXIST) return false;
    // EAGAIN: the mapping changed under us (e.g. a concurrent MADV_REMOVE); the kernel asks
    // for a retry. Retrying from the start is safe: copied pages then report EEXIST.
    if (r == -EAGAIN) continue;
    return UffdErrnoStatus(-r, "UFFDIO_COPY");
  }
}

absl::StatusOr<bool> Userfaultfd::ZeroPage(void* dst, uint64_t len) {
  if (!Aligned(dst, len)) return AlignmentError("UFFDIO_ZEROPAGE", dst, len);
  for (;;) {
    uffdio_zeropage zp = {};
    zp.range.start = Addr(dst);
    zp.range.len = len;
    int r = os_->Ioctl(fd_, UFFDIO_ZEROPAGE, &zp);
    if (r >= 0) return true;
    if (r == -EEXIST) return false;
    if (r == -EAGAIN) continue;
    return UffdErrnoStatus(-r, "UFFDIO_ZEROPAGE");
  }
}

absl::Status Userfaultfd::WriteProtect(void* addr, uint64_t len, bool protect, bool wake) {
  if (!Aligned(addr, len)) return AlignmentError("UFFDIO_WRITEPROTECT", addr, len);
  uffdio_writeprotect wp = {};
  wp.range.start = Addr(addr);
  wp.range.len = len;
  wp.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : (wake ? 0 : UFFDIO_WRITEPROTECT_MODE_DONTWAKE);
  return Check(os_->Ioctl(fd_, UFFDIO_WRITEPROTECT, &wp),
               protect ? "UFFDIO_WRITEPROTECT (protect)" : "UFFDIO_WRITEPROTECT (unprotect)");
}

absl::Status Userfaultfd::Wake(void* addr, uint64_t len) {
  if (!Aligned(addr, len)) return AlignmentError("UFFDIO_WAKE", addr, len);
  uffdio_range range = {Addr(addr), len};
  return Check(os_->Ioctl(fd_, UFFDIO_WAKE, &range), "UFFDIO_WAKE");
}

absl::StatusOr<size_t> Userfaultfd::ReadMessages(uffd_msg* msgs, size_t max) {
  ssize_t n = os_->Read(fd_, msgs, max * sizeof(uffd_msg));
  if (n == -EAGAIN) return 0;
  if (n < 0) return UffdErrnoStatus(static_cast<int>(-n), "read(userfaultfd)");
  if (n % sizeof(uffd_msg) != 0) {
    return absl::DataLossError(
        absl::StrCat("read(userfaultfd): ", n, " bytes is not a whole number of uffd_msg"));
  }
  return static_cast<size_t>(n) / sizeof(uffd_msg);
}

}  // namespace amalgam::memory
