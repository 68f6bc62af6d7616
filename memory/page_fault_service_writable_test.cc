// Real-userfaultfd tests of the writable installs (a Modified grant) and Wake (a fault that
// found its page already resolved), with host threads as the faulting threads.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <thread>

#include "memory/fault_testutil.h"
#include "memory/page_fault_service.h"

namespace amalgam::memory {
namespace {

using testing::Metric;
using testing::PagePattern;
using testing::RecordingFaultHandler;
using testing::StartService;

constexpr uint64_t kPages = 8;

TEST_CASE("a writable install resolves a write miss with no write-protect fault after it") {
  auto mem = testing::MakeTestMemory(kPages);
  RecordingFaultHandler h;
  PageFaultService* svc_ptr = nullptr;
  auto svc = StartService(mem.get(), &h);
  svc_ptr = svc.get();
  const std::vector<uint8_t> content = PagePattern(0xAB000000);
  h.set_react([&](const PageFault& f) -> absl::Status {
    if (f.kind != FaultKind::kMissing) return absl::InternalError("unexpected WP fault");
    return f.gpa.value() == 0 ? svc_ptr->InstallWritable(f.gpa, content)
                              : svc_ptr->InstallZeroWritable(f.gpa);
  });
  volatile uint32_t* p0 =
      reinterpret_cast<volatile uint32_t*>(mem->GetHostAddress(GuestAddress(0), 4096).value());
  volatile uint32_t* p1 =
      reinterpret_cast<volatile uint32_t*>(mem->GetHostAddress(GuestAddress(4096), 4096).value());
  uint32_t before = 0, zero = 1;
  std::thread([&] {
    p0[2] = 0x11;  // write miss: installed with the content, then the store lands
    before = p0[3];
    p1[5] = 0x22;
    zero = p1[6];
  }).join();
  CHECK(p0[2] == 0x11);
  CHECK(before == 0xAB000003);
  CHECK(p1[5] == 0x22);
  CHECK(zero == 0);
  CHECK(h.faults().size() == 2);  // two misses, no write-protect faults
  CHECK(h.errors().empty());
  // The service counts after the copy woke the thread: wait for it.
  CHECK(testing::WaitMetric(*svc, "copies", 1));
  CHECK(testing::WaitMetric(*svc, "zero_installs", 1));
  CHECK(Metric(*svc, "copies") == 1);
  CHECK_FALSE(svc->InstallWritable(GuestAddress(0), {}).ok());  // wrong size
}

TEST_CASE("Wake releases a thread whose page another thread's install already resolved") {
  auto mem = testing::MakeTestMemory(kPages);
  RecordingFaultHandler h;  // records; the test resolves
  auto svc = StartService(mem.get(), &h);
  volatile uint32_t* p = reinterpret_cast<volatile uint32_t*>(
      mem->GetHostAddress(GuestAddress(2 * 4096), 4096).value());
  uint32_t seen = 0;
  std::thread reader([&] { seen = p[1]; });
  REQUIRE(h.WaitForFaults(1));
  // Put the page in place through the memfd (not the registered mapping), as if resolved
  // behind the service's back: only a wake lets the blocked reader retry and see it.
  const uint32_t value = 0x77;
  const GuestRegion& r = mem->regions()[0];
  REQUIRE(pwrite(r.memfd(), &value, sizeof(value), r.memfd_offset() + 2 * 4096 + 4) == 4);
  REQUIRE(svc->Wake(GuestAddress(2 * 4096)).ok());
  reader.join();
  CHECK(seen == 0x77);
  CHECK(testing::WaitMetric(*svc, "wakes", 1));
  CHECK_FALSE(svc->Wake(GuestAddress(kPages * 4096)).ok());  // outside guest RAM
}

}  // namespace
}  // namespace amalgam::memory
