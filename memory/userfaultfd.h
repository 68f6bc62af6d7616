// Userfaultfd: one userfaultfd (RAII) with the operations a distributed-memory fault service
// needs: register MISSING|WP, copy (optionally write-protected), zero page, write-protect on/off,
// wake, read fault messages. Opened through /dev/userfaultfd (works in the Bazel sandbox and
// without vm.unprivileged_userfaultfd) with a fallback to userfaultfd(2).
// Thread-safety: all operations may run concurrently from any thread (they are ioctls on one fd),
// except Close() and destruction, which must not overlap any other call.
// Ownership: owns the fd; borrows the UffdOs (must outlive this object).
#ifndef AMALGAM_MEMORY_USERFAULTFD_H_
#define AMALGAM_MEMORY_USERFAULTFD_H_

#include <linux/userfaultfd.h>
#include <sys/ioctl.h>

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "memory/uffd_os.h"

// Debian 12 ships 6.1 uapi headers; these arrived later.
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif

namespace amalgam::memory {

class Userfaultfd {
 public:
  // Features we need: WP fault flags, and WP on shmem (GuestMemory is a memfd).
  static constexpr uint64_t kRequiredFeatures =
      UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
  // Used when offered: faulting thread ids; WP markers on never-populated pages.
  static constexpr uint64_t kOptionalFeatures =
      UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_WP_UNPOPULATED;

  // Opens a non-blocking, close-on-exec uffd and negotiates the API.
  // PERMISSION_DENIED (with the fix) when neither /dev/userfaultfd nor the syscall is allowed;
  // FAILED_PRECONDITION naming every required feature the kernel lacks.
  static absl::StatusOr<std::unique_ptr<Userfaultfd>> Open(UffdOs* os = UffdOs::Real());
  ~Userfaultfd();
  Userfaultfd(const Userfaultfd&) = delete;
  Userfaultfd& operator=(const Userfaultfd&) = delete;

  int fd() const { return fd_; }
  uint64_t features() const { return features_; }  // as granted by UFFDIO_API
  bool has_thread_id() const { return features_ & UFFD_FEATURE_THREAD_ID; }

  // Registers [addr, addr + len) for MISSING and WP faults. Page aligned; FAILED_PRECONDITION
  // if the kernel does not offer COPY / WRITEPROTECT / WAKE on the range.
  absl::Status Register(void* addr, uint64_t len);
  absl::Status Unregister(void* addr, uint64_t len);

  // Atomically fills missing pages at dst with len bytes from src and wakes the faulting
  // threads; write_protect maps them read-only (UFFDIO_COPY_MODE_WP). Returns false when a
  // page was already present (EEXIST: someone resolved it first); true when copied.
  absl::StatusOr<bool> Copy(void* dst, const void* src, uint64_t len, bool write_protect);
  // Fills missing pages with zeros (writable); false on EEXIST like Copy.
  absl::StatusOr<bool> ZeroPage(void* dst, uint64_t len);
  // protect=true never wakes (nobody waits on a page being protected); protect=false wakes
  // threads blocked on the WP fault unless wake=false.
  absl::Status WriteProtect(void* addr, uint64_t len, bool protect, bool wake = true);
  absl::Status Wake(void* addr, uint64_t len);

  // Reads up to max messages without blocking; 0 when none is queued.
  absl::StatusOr<size_t> ReadMessages(uffd_msg* msgs, size_t max);

  // Closes the fd. The kernel then unregisters every range and wakes every blocked thread; they
  // retry without userfaultfd (missing pages read the memfd's content, WP is gone).
  void Close();

 private:
  Userfaultfd(UffdOs* os, int fd, uint64_t features) : os_(os), fd_(fd), features_(features) {}
  absl::Status Check(int r, const char* what) const;
  UffdOs* os_;
  int fd_;
  uint64_t features_;
};

// An errno (positive) as a Status with a canonical code, e.g. "UFFDIO_COPY: No such file...".
absl::Status UffdErrnoStatus(int err, const char* what);

}  // namespace amalgam::memory

#endif  // AMALGAM_MEMORY_USERFAULTFD_H_
