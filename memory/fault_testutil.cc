#include "memory/fault_testutil.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>

#include "absl/time/clock.h"
#include "memory/test_memory.h"

namespace amalgam::memory::testing {

std::unique_ptr<GuestMemory> MakeTestMemory(uint64_t pages, GuestAddress start) {
  return MakeMemory({{start, pages * kPageSize}});
}

std::vector<uint8_t> PagePattern(uint32_t tag) {
  std::vector<uint8_t> page(kPageSize);
  for (uint32_t i = 0; i < kPageSize / 4; ++i) {
    uint32_t v = tag + i;
    std::memcpy(&page[i * 4], &v, 4);
  }
  return page;
}

uint32_t CurrentTid() { return static_cast<uint32_t>(syscall(SYS_gettid)); }

bool Eventually(const std::function<bool()>& pred) {
  for (int i = 0; i < 3000; ++i) {
    if (pred()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return pred();
}

uint64_t Metric(const PageFaultService& svc, const char* name) { return svc.Metrics().at(name); }

bool WaitMetric(const PageFaultService& svc, const char* name, uint64_t at_least) {
  return Eventually([&] { return Metric(svc, name) >= at_least; });
}

std::unique_ptr<PageFaultService> StartService(GuestMemory* mem, PageFaultHandler* handler,
                                               UffdOs* os) {
  PageFaultService::Options opt;
  opt.os = os;
  auto svc = PageFaultService::Create(mem, handler, opt);
  INFO(svc.status().ToString());
  REQUIRE(svc.ok());
  REQUIRE((*svc)->RegisterAll().ok());
  REQUIRE((*svc)->Start().ok());
  return std::move(*svc);
}

}  // namespace amalgam::memory::testing
