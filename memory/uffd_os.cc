#include "memory/uffd_os.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace amalgam::memory {
namespace {

template <typename T>
T Ret(T r) {
  return r < 0 ? static_cast<T>(-errno) : r;
}

}  // namespace

int UffdOs::Open(const char* path, int flags) { return Ret(::open(path, flags)); }
int UffdOs::Close(int fd) { return Ret(::close(fd)); }
int UffdOs::Ioctl(int fd, unsigned long request, void* arg) {
  return Ret(::ioctl(fd, request, arg));
}
int UffdOs::UserfaultfdSyscall(int flags) {
  return Ret(static_cast<int>(::syscall(SYS_userfaultfd, flags)));
}
ssize_t UffdOs::Read(int fd, void* buf, size_t len) { return Ret(::read(fd, buf, len)); }
ssize_t UffdOs::Write(int fd, const void* buf, size_t len) { return Ret(::write(fd, buf, len)); }
ssize_t UffdOs::Pread(int fd, void* buf, size_t len, off_t offset) {
  return Ret(::pread(fd, buf, len, offset));
}
int UffdOs::Poll(struct pollfd* fds, nfds_t nfds, int timeout_ms) {
  return Ret(::poll(fds, nfds, timeout_ms));
}
int UffdOs::Madvise(void* addr, size_t len, int advice) {
  return Ret(::madvise(addr, len, advice));
}
int UffdOs::EventFd(unsigned int initval, int flags) { return Ret(::eventfd(initval, flags)); }

UffdOs* UffdOs::Real() {
  static UffdOs* const real = new UffdOs();
  return real;
}

}  // namespace amalgam::memory
