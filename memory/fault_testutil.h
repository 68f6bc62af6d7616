// Shared scaffolding for the userfaultfd tests (tests only): a small GuestMemory, page patterns,
// a started PageFaultService, and polling for state the service thread updates asynchronously.
// Thread-safety: the free functions are thread-compatible; the setup helpers use Catch2's REQUIRE
// and must run on the test's main thread.
#ifndef AMALGAM_MEMORY_FAULT_TESTUTIL_H_
#define AMALGAM_MEMORY_FAULT_TESTUTIL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "memory/fault_test_handler.h"
#include "memory/guest_memory.h"
#include "memory/page_fault_service.h"
#include "memory/uffd_os.h"

namespace amalgam::memory::testing {

// One region of `pages` 4 KiB pages at `start` (REQUIREs success).
std::unique_ptr<GuestMemory> MakeTestMemory(uint64_t pages, GuestAddress start = GuestAddress(0));

// A page whose 32-bit words are tag, tag+1, ... (distinct per tag, so a wrong page shows).
std::vector<uint8_t> PagePattern(uint32_t tag);

// The caller's kernel thread id (what PageFault::thread_id reports).
uint32_t CurrentTid();

// Polls pred every 10 ms for up to 30 s (generous: the machine is shared); true once it holds.
bool Eventually(const std::function<bool()>& pred);

uint64_t Metric(const PageFaultService& svc, const char* name);
// Eventually Metric(svc, name) >= at_least.
bool WaitMetric(const PageFaultService& svc, const char* name, uint64_t at_least);

// A service over all of mem's regions, registered and started (REQUIREs each step).
std::unique_ptr<PageFaultService> StartService(GuestMemory* mem, PageFaultHandler* handler,
                                               UffdOs* os = UffdOs::Real());

}  // namespace amalgam::memory::testing

#endif  // AMALGAM_MEMORY_FAULT_TESTUTIL_H_
