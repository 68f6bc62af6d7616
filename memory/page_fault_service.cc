#include "memory/page_fault_service.h"

#include <errno.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace amalgam::memory {
namespace {

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// The source of every zero-fill install; UFFDIO_ZEROPAGE cannot map write-protected, and a
// zero page that is writable from the start would let a write skip the directory.
alignas(4096) const uint8_t kZeroPage[kPageSize] = {};

}  // namespace

absl::StatusOr<std::unique_ptr<PageFaultService>> PageFaultService::Create(
    GuestMemory* memory, PageFaultHandler* handler, Options options) {
  if (memory == nullptr || handler == nullptr || options.os == nullptr) {
    return absl::InvalidArgumentError("PageFaultService: memory, handler and os must be set");
  }
  if (memory->backing() != GuestMemory::Backing::kSharedMemfd) {
    return absl::FailedPreconditionError(
        "PageFaultService: guest memory must be created with GuestMemory::Backing::kSharedMemfd "
        "(4 KiB pages of a memfd), not kPrivateHugePages");
  }
  absl::StatusOr<std::unique_ptr<Userfaultfd>> uffd = Userfaultfd::Open(options.os);
  if (!uffd.ok()) return uffd.status();
  int efd = options.os->EventFd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd < 0) return UffdErrnoStatus(-efd, "eventfd (page fault service shutdown)");
  return std::unique_ptr<PageFaultService>(
      new PageFaultService(memory, handler, options.os, std::move(*uffd), efd));
}

PageFaultService::PageFaultService(GuestMemory* memory, PageFaultHandler* handler, UffdOs* os,
                                   std::unique_ptr<Userfaultfd> uffd, int eventfd)
    : memory_(memory), handler_(handler), os_(os), eventfd_(eventfd), uffd_(std::move(uffd)) {}

PageFaultService::~PageFaultService() {
  Shutdown();
  os_->Close(eventfd_);
}

absl::Status PageFaultService::Register(GuestAddress start, uint64_t len) {
  if (start.value() % kPageSize != 0 || len % kPageSize != 0 || len == 0) {
    return absl::InvalidArgumentError(absl::StrCat("Register: gpa 0x", absl::Hex(start.value()),
                                                   " and length ", len,
                                                   " must be non-empty multiples of 4096"));
  }
  absl::StatusOr<uint8_t*> host = memory_->GetHostAddress(start, len);
  if (!host.ok()) {
    return absl::OutOfRangeError(absl::StrCat("Register: [0x", absl::Hex(start.value()), ", +", len,
                                              ") is not inside one guest RAM region"));
  }
  absl::ReaderMutexLock lock(&uffd_mu_);
  if (closed_) return absl::FailedPreconditionError("Register: the service was shut down");
  return uffd_->Register(*host, len);
}

absl::Status PageFaultService::RegisterAll() {
  for (const GuestRegion& r : memory_->regions()) {
    absl::Status s = Register(r.start(), r.size());
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status PageFaultService::Start() {
  if (started_) return absl::FailedPreconditionError("Start: already started");
  if (shut_down_) return absl::FailedPreconditionError("Start: the service was shut down");
  started_ = true;
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void PageFaultService::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (thread_.joinable()) {
    uint64_t one = 1;
    os_->Write(eventfd_, &one, sizeof(one));
    thread_.join();
  }
  absl::WriterMutexLock lock(&uffd_mu_);
  {
    absl::MutexLock pl(&pending_mu_);
    counters_.released_on_shutdown += pending_.size();
    pending_.clear();
  }
  closed_ = true;
  uffd_->Close();  // the kernel wakes every blocked thread (see the contract in the header)
}

void PageFaultService::Loop() {
  pollfd fds[2] = {{uffd_->fd(), POLLIN, 0}, {eventfd_, POLLIN, 0}};
  uffd_msg msgs[16];
  for (;;) {
    int r = os_->Poll(fds, 2, -1);
    if (r == -EINTR) continue;
    if (r < 0) {
      counters_.read_errors++;
      return;  // Shutdown() still releases the blocked threads
    }
    if (fds[1].revents) return;
    if (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
      counters_.read_errors++;
      return;
    }
    if (!(fds[0].revents & POLLIN)) continue;
    absl::StatusOr<size_t> n = uffd_->ReadMessages(msgs, 16);
    if (!n.ok()) {
      if (n.status().code() == absl::StatusCode::kUnavailable) continue;  // EINTR
      counters_.read_errors++;
      return;
    }
    for (size_t i = 0; i < *n; ++i) Dispatch(msgs[i]);
  }
}

void PageFaultService::Dispatch(const uffd_msg& msg) {
  if (msg.event != UFFD_EVENT_PAGEFAULT) {
    counters_.events_other++;  // we request no non-cooperative events; count, never crash
    return;
  }
  PageFault f;
  f.read_ns = NowNs();
  const uint64_t addr = msg.arg.pagefault.address & ~(kPageSize - 1);
  const uint64_t flags = msg.arg.pagefault.flags;
  f.host = reinterpret_cast<uint8_t*>(addr);
  f.thread_id = uffd_->has_thread_id() ? msg.arg.pagefault.feat.ptid : 0;
  f.write = (flags & UFFD_PAGEFAULT_FLAG_WRITE) != 0;
  f.kind = (flags & UFFD_PAGEFAULT_FLAG_WP) ? FaultKind::kWriteProtect : FaultKind::kMissing;
  bool found = false;
  for (const GuestRegion& r : memory_->regions()) {
    uint64_t base = reinterpret_cast<uint64_t>(r.host_address());
    if (addr >= base && addr - base < r.size()) {
      f.gpa = r.start().UncheckedAdd(addr - base);
      found = true;
      break;
    }
  }
  if (!found) {
    counters_.faults_unmapped++;  // cannot happen for ranges we registered; never crash
    return;
  }
  if (f.kind == FaultKind::kWriteProtect) {
    counters_.faults_wp++;
  } else if (f.write) {
    counters_.faults_missing_write++;
  } else {
    counters_.faults_missing_read++;
  }
  {
    absl::MutexLock lock(&pending_mu_);
    pending_.emplace(f.host, f.read_ns);  // keeps the earliest if several threads fault
  }
  handler_->OnFault(f);
}

void PageFaultService::Resolved(uint8_t* host) {
  int64_t t0;
  {
    absl::MutexLock lock(&pending_mu_);
    auto it = pending_.find(host);
    if (it == pending_.end()) return;
    t0 = it->second;
    pending_.erase(it);
  }
  uint64_t us = static_cast<uint64_t>(std::max<int64_t>(0, NowNs() - t0)) / 1000;
  int b = 0;
  while (b < kBuckets && us > (uint64_t{1} << b)) ++b;
  counters_.buckets[b]++;
  counters_.latency_sum_us += us;
  counters_.latency_count++;
}

absl::StatusOr<PageFaultService::Page> PageFaultService::Resolve(GuestAddress gpa,
                                                                 const char* what) const {
  if (gpa.value() % kPageSize != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": gpa 0x", absl::Hex(gpa.value()), " is not page aligned"));
  }
  const GuestRegion* region = memory_->FindRegion(gpa);
  if (region == nullptr || !memory_->IsValidRange(gpa, kPageSize)) {
    return absl::OutOfRangeError(
        absl::StrCat(what, ": gpa 0x", absl::Hex(gpa.value()), " is not guest RAM"));
  }
  return Page{region, region->host_address() + (gpa.value() - region->start().value())};
}

absl::StatusOr<bool> PageFaultService::Install(GuestAddress gpa, const uint8_t* bytes,
                                               bool write_protect, const char* what) {
  absl::StatusOr<Page> page = Resolve(gpa, what);
  if (!page.ok()) return page.status();
  absl::ReaderMutexLock lock(&uffd_mu_);
  if (closed_) return absl::FailedPreconditionError(absl::StrCat(what, ": service shut down"));
  absl::StatusOr<bool> copied = uffd_->Copy(page->host, bytes, kPageSize, write_protect);
  if (!copied.ok()) return copied.status();
  if (!*copied) {
    // Already present: someone resolved it first. Its waiters may have faulted after that
    // install's wake, so wake them explicitly.
    counters_.eexist++;
    counters_.wakes++;
    absl::Status s = uffd_->Wake(page->host, kPageSize);
    if (!s.ok()) return s;
  }
  Resolved(page->host);
  return *copied;
}

absl::Status PageFaultService::InstallShared(GuestAddress gpa, absl::Span<const uint8_t> bytes) {
  if (bytes.size() != kPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("InstallShared: bytes has ", bytes.size(), " bytes, must be 4096"));
  }
  absl::StatusOr<bool> copied = Install(gpa, bytes.data(), /*write_protect=*/true, "InstallShared");
  if (!copied.ok()) return copied.status();
  if (*copied) counters_.copies++;
  return absl::OkStatus();
}

absl::Status PageFaultService::InstallZeroShared(GuestAddress gpa) {
  absl::StatusOr<bool> copied =
      Install(gpa, kZeroPage, /*write_protect=*/true, "InstallZeroShared");
  if (!copied.ok()) return copied.status();
  if (*copied) counters_.zero_installs++;
  return absl::OkStatus();
}

absl::Status PageFaultService::InstallWritable(GuestAddress gpa, absl::Span<const uint8_t> bytes) {
  if (bytes.size() != kPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("InstallWritable: bytes has ", bytes.size(), " bytes, must be 4096"));
  }
  absl::StatusOr<bool> copied =
      Install(gpa, bytes.data(), /*write_protect=*/false, "InstallWritable");
  if (!copied.ok()) return copied.status();
  if (*copied) counters_.copies++;
  return absl::OkStatus();
}

absl::Status PageFaultService::InstallZeroWritable(GuestAddress gpa) {
  absl::StatusOr<bool> copied =
      Install(gpa, kZeroPage, /*write_protect=*/false, "InstallZeroWritable");
  if (!copied.ok()) return copied.status();
  if (*copied) counters_.zero_installs++;
  return absl::OkStatus();
}

absl::Status PageFaultService::Wake(GuestAddress gpa) {
  absl::StatusOr<Page> page = Resolve(gpa, "Wake");
  if (!page.ok()) return page.status();
  absl::ReaderMutexLock lock(&uffd_mu_);
  if (closed_) return absl::FailedPreconditionError("Wake: service shut down");
  absl::Status s = uffd_->Wake(page->host, kPageSize);
  if (!s.ok()) return s;
  counters_.wakes++;
  Resolved(page->host);
  return absl::OkStatus();
}

absl::Status PageFaultService::MakeWritable(GuestAddress gpa) {
  absl::StatusOr<Page> page = Resolve(gpa, "MakeWritable");
  if (!page.ok()) return page.status();
  absl::ReaderMutexLock lock(&uffd_mu_);
  if (closed_) return absl::FailedPreconditionError("MakeWritable: service shut down");
  absl::Status s = uffd_->WriteProtect(page->host, kPageSize, /*protect=*/false, /*wake=*/true);
  if (!s.ok()) return s;
  counters_.wp_off++;
  Resolved(page->host);
  return absl::OkStatus();
}

absl::Status PageFaultService::CopyOut(const Page& page, absl::Span<uint8_t> out,
                                       const char* what) {
  if (out.empty()) return absl::OkStatus();
  // Read through the memfd, not the mapping: a page that is missing here would otherwise fault
  // into our own uffd (and deadlock on the service thread). A hole reads as zeros.
  off_t off =
      static_cast<off_t>(page.region->memfd_offset() + (page.host - page.region->host_address()));
  ssize_t n = os_->Pread(page.region->memfd(), out.data(), kPageSize, off);
  if (n < 0) return UffdErrnoStatus(static_cast<int>(-n), absl::StrCat(what, ": pread").c_str());
  if (static_cast<size_t>(n) != kPageSize) {
    return absl::DataLossError(absl::StrCat(what, ": short pread of ", n, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status PageFaultService::Downgrade(GuestAddress gpa, absl::Span<uint8_t> out) {
  if (out.size() != kPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("Downgrade: out has ", out.size(), " bytes, must be 4096"));
  }
  absl::StatusOr<Page> page = Resolve(gpa, "Downgrade");
  if (!page.ok()) return page.status();
  absl::ReaderMutexLock lock(&uffd_mu_);
  if (closed_) return absl::FailedPreconditionError("Downgrade: service shut down");
  // Protect before copying: a write after the copy would otherwise be lost.
  absl::Status s = uffd_->WriteProtect(page->host, kPageSize, /*protect=*/true);
  if (!s.ok()) return s;
  counters_.wp_on++;
  s = CopyOut(*page, out, "Downgrade");
  if (!s.ok()) return s;
  counters_.downgrades++;
  return absl::OkStatus();
}

absl::Status PageFaultService::Drop(GuestAddress gpa, absl::Span<uint8_t> out) {
  if (!out.empty() && out.size() != kPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("Drop: out has ", out.size(), " bytes, must be empty or 4096"));
  }
  absl::StatusOr<Page> page = Resolve(gpa, "Drop");
  if (!page.ok()) return page.status();
  absl::ReaderMutexLock lock(&uffd_mu_);
  if (closed_) return absl::FailedPreconditionError("Drop: service shut down");
  absl::Status s = uffd_->WriteProtect(page->host, kPageSize, /*protect=*/true);
  if (!s.ok()) return s;
  counters_.wp_on++;
  s = CopyOut(*page, out, "Drop");
  if (!s.ok()) return s;
  // MADV_REMOVE frees the memfd page, so the next access is a MISSING fault. MADV_DONTNEED only
  // zaps this mapping; the page cache keeps the stale page and no fault would come.
  int r = os_->Madvise(page->host, kPageSize, MADV_REMOVE);
  if (r < 0) return UffdErrnoStatus(-r, "Drop: madvise(MADV_REMOVE)");
  counters_.drops++;
  return absl::OkStatus();
}

std::map<std::string, uint64_t> PageFaultService::Metrics() const {
  const Counters& c = counters_;
  std::map<std::string, uint64_t> m = {
      {"faults_missing_read", c.faults_missing_read},
      {"faults_missing_write", c.faults_missing_write},
      {"faults_wp", c.faults_wp},
      {"faults_unmapped", c.faults_unmapped},
      {"events_other", c.events_other},
      {"read_errors", c.read_errors},
      {"copies", c.copies},
      {"zero_installs", c.zero_installs},
      {"eexist", c.eexist},
      {"wakes", c.wakes},
      {"wp_on", c.wp_on},
      {"wp_off", c.wp_off},
      {"downgrades", c.downgrades},
      {"drops", c.drops},
      {"released_on_shutdown", c.released_on_shutdown},
      {"fault_service_count", c.latency_count},
      {"fault_service_sum_us", c.latency_sum_us},
  };
  for (int b = 0; b < kBuckets; ++b) {
    m[absl::StrCat("fault_service_us_le_", uint64_t{1} << b)] = c.buckets[b];
  }
  m["fault_service_us_le_inf"] = c.buckets[kBuckets];
  return m;
}

}  // namespace amalgam::memory
