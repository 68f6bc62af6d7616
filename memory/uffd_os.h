// UffdOs: every OS call the userfaultfd code makes, behind one interface so tests can inject
// failures. Results follow one convention: >= 0 on success, -errno on failure (errno untouched).
// Thread-safety: Real() is stateless and thread-safe; test doubles state their own rules.
// Ownership: Real() returns a process-lifetime singleton; never delete it.
#ifndef AMALGAM_MEMORY_UFFD_OS_H_
#define AMALGAM_MEMORY_UFFD_OS_H_

#include <poll.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace amalgam::memory {

class UffdOs {
 public:
  virtual ~UffdOs() = default;
  virtual int Open(const char* path, int flags);
  virtual int Close(int fd);
  virtual int Ioctl(int fd, unsigned long request, void* arg);
  // userfaultfd(2) itself (the fallback when /dev/userfaultfd is not usable).
  virtual int UserfaultfdSyscall(int flags);
  virtual ssize_t Read(int fd, void* buf, size_t len);
  virtual ssize_t Write(int fd, const void* buf, size_t len);
  virtual ssize_t Pread(int fd, void* buf, size_t len, off_t offset);
  virtual int Poll(struct pollfd* fds, nfds_t nfds, int timeout_ms);
  virtual int Madvise(void* addr, size_t len, int advice);
  virtual int EventFd(unsigned int initval, int flags);

  static UffdOs* Real();
};

}  // namespace amalgam::memory

#endif  // AMALGAM_MEMORY_UFFD_OS_H_
