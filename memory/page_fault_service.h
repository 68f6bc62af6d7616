// PageFaultService: the userfaultfd page-fault service for guest RAM. A thread polls the uffd and
// hands each fault (as a GPA, with its kind and the faulting thread) to a PageFaultHandler; the
// handler (the distributed memory runtime) resolves it, now or later and from any thread, with
// the resolve operations below. Mechanism only: it keeps no per-page coherence state.
// Thread-safety: resolve operations and Metrics() are thread-safe; Register*/Start/Shutdown are
// called by the owner on one thread, never from OnFault.
// Ownership: owns the Userfaultfd and its thread; borrows GuestMemory, the handler and the
// UffdOs, which must outlive the service.
//
// Shutdown contract: Shutdown() stops the thread and closes the uffd. The kernel then unregisters
// the ranges and wakes every thread still blocked on a fault; they retry without userfaultfd, so a
// missing page reads the memfd's current content (zeros if never installed) and WP is lifted.
// Nothing hangs; the count of faults released this way is metric "released_on_shutdown". Stop the
// vCPUs first if those pages must not be used.
//
// If reading the uffd fails (not EAGAIN/EINTR) the thread stops and counts "read_errors"; faults
// then wait until Shutdown() releases them as above.
#ifndef AMALGAM_MEMORY_PAGE_FAULT_SERVICE_H_
#define AMALGAM_MEMORY_PAGE_FAULT_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "memory/guest_memory.h"
#include "memory/uffd_os.h"
#include "memory/userfaultfd.h"

namespace amalgam::memory {

enum class FaultKind {
  kMissing,       // the page is not mapped here (Invalid): read or write
  kWriteProtect,  // a write to a write-protected (Shared) page
};

struct PageFault {
  GuestAddress gpa;         // page aligned
  uint8_t* host = nullptr;  // page-aligned host address of that page
  FaultKind kind = FaultKind::kMissing;
  bool write = false;      // the access was a write (always true for kWriteProtect)
  uint32_t thread_id = 0;  // faulting thread (vCPU or host thread); 0 without THREAD_ID
  int64_t read_ns = 0;     // CLOCK_MONOTONIC when the service read the fault
};

class PageFaultHandler {
 public:
  virtual ~PageFaultHandler() = default;
  // Called on the service thread, one fault at a time. The faulting thread stays blocked until
  // a resolve operation covers the page; the handler may resolve later from another thread.
  virtual void OnFault(const PageFault& fault) = 0;
};

class PageFaultService {
 public:
  struct Options {
    UffdOs* os = UffdOs::Real();
  };
  // memory must use GuestMemory::Backing::kSharedMemfd (FAILED_PRECONDITION otherwise).
  static absl::StatusOr<std::unique_ptr<PageFaultService>> Create(GuestMemory* memory,
                                                                  PageFaultHandler* handler,
                                                                  Options options);
  static absl::StatusOr<std::unique_ptr<PageFaultService>> Create(GuestMemory* memory,
                                                                  PageFaultHandler* handler) {
    return Create(memory, handler, Options());
  }
  ~PageFaultService();  // Shutdown()
  PageFaultService(const PageFaultService&) = delete;
  PageFaultService& operator=(const PageFaultService&) = delete;

  // Registers [start, start + len) (page aligned, inside one region) for MISSING|WP faults.
  // OUT_OF_RANGE outside guest RAM. Pages already present stay mapped (and writable).
  absl::Status Register(GuestAddress start, uint64_t len);
  absl::Status RegisterAll();
  absl::Status Start();
  // Idempotent; see the shutdown contract above.
  void Shutdown();

  // --- resolve operations (one 4 KiB page at a page-aligned gpa) ---
  // Installs bytes (exactly 4096) read-only (UFFDIO_COPY + MODE_WP) and wakes the waiters. A
  // page that is already present counts as resolved (EEXIST): the waiters are woken anyway.
  absl::Status InstallShared(GuestAddress gpa, absl::Span<const uint8_t> bytes);
  // Installs a read-only zero page (a never-written page granted without payload).
  absl::Status InstallZeroShared(GuestAddress gpa);
  // Installs bytes (or zeros) writable (UFFDIO_COPY without MODE_WP) and wakes the waiters: a
  // Modified grant with data, so the woken writer does not fault a second time.
  absl::Status InstallWritable(GuestAddress gpa, absl::Span<const uint8_t> bytes);
  absl::Status InstallZeroWritable(GuestAddress gpa);
  // Wakes the threads blocked on the page without changing it (a fault that found the page
  // already resolved).
  absl::Status Wake(GuestAddress gpa);
  // Lifts write protection and wakes the writers (Shared -> Modified).
  absl::Status MakeWritable(GuestAddress gpa);
  // Write-protects FIRST, then copies the page into out (4096 bytes): a guest write racing
  // with the downgrade faults instead of being lost (Modified -> Shared).
  absl::Status Downgrade(GuestAddress gpa, absl::Span<uint8_t> out);
  // Write-protects, copies out if out is non-empty (4096 bytes), then MADV_REMOVE so the next
  // access faults as MISSING (MADV_DONTNEED would not refault a memfd page).
  absl::Status Drop(GuestAddress gpa, absl::Span<uint8_t> out);

  // Counters ("copies"/"zero_installs" count pages actually installed; "eexist" the installs
  // that found the page present) and the read->resolve latency histogram
  // ("fault_service_us_le_<N>": faults resolved in (N/2, N] microseconds; "..._le_inf" for the
  // rest).
  std::map<std::string, uint64_t> Metrics() const;
  const Userfaultfd& uffd() const { return *uffd_; }

 private:
  struct Page {
    const GuestRegion* region;
    uint8_t* host;
  };
  static constexpr int kBuckets = 21;  // 1 us .. 2^20 us, then +inf

  PageFaultService(GuestMemory* memory, PageFaultHandler* handler, UffdOs* os,
                   std::unique_ptr<Userfaultfd> uffd, int eventfd);
  absl::StatusOr<Page> Resolve(GuestAddress gpa, const char* what) const;
  absl::Status CopyOut(const Page& page, absl::Span<uint8_t> out, const char* what);
  // True when copied, false when the page was already present (EEXIST, waiters woken).
  absl::StatusOr<bool> Install(GuestAddress gpa, const uint8_t* bytes, bool write_protect,
                               const char* what);
  void Resolved(uint8_t* host);
  void Loop();
  void Dispatch(const uffd_msg& msg);

  GuestMemory* const memory_;
  PageFaultHandler* const handler_;
  UffdOs* const os_;
  const int eventfd_;

  // Reader: every uffd operation. Writer: Shutdown closing the fd (no ioctl on a reused fd).
  mutable absl::Mutex uffd_mu_;
  const std::unique_ptr<Userfaultfd> uffd_;  // its fd is closed only under the writer lock
  bool closed_ ABSL_GUARDED_BY(uffd_mu_) = false;

  absl::Mutex pending_mu_;
  absl::flat_hash_map<uint8_t*, int64_t> pending_ ABSL_GUARDED_BY(pending_mu_);

  std::thread thread_;
  bool started_ = false;
  bool shut_down_ = false;

  struct Counters {
    std::atomic<uint64_t> faults_missing_read{0}, faults_missing_write{0}, faults_wp{0},
        faults_unmapped{0}, events_other{0}, read_errors{0}, copies{0}, zero_installs{0}, eexist{0},
        wakes{0}, wp_on{0}, wp_off{0}, downgrades{0}, drops{0}, released_on_shutdown{0},
        latency_sum_us{0}, latency_count{0};
    std::atomic<uint64_t> buckets[kBuckets + 1] = {};
  };
  mutable Counters counters_;
};

}  // namespace amalgam::memory

#endif  // AMALGAM_MEMORY_PAGE_FAULT_SERVICE_H_
