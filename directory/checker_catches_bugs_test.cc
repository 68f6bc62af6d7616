// Proves the exhaustive checker is not vacuous: each deliberately broken transition (compiled
// only into :directory_with_injected_bugs) is reported, with the interleaving that breaks it.
#include <catch2/catch.hpp>
#include <cstdio>

#include "directory/fault_injection.h"
#include "directory/protocol_model.h"

namespace amalgam::directory {
namespace {

// Explores every interleaving of `nodes` nodes doing two operations each on one page, with `bug`
// compiled in; prints the summary so a failure's log shows what the checker saw.
CheckResult ExploreWithBug(InjectedBug bug, uint32_t nodes, const char* name) {
  ModelConfig c;
  c.nodes = nodes;
  c.pages = 1;
  c.ops_per_node = 2;
  InjectedBugForTest() = bug;
  CheckResult r = ExploreAll(c);
  InjectedBugForTest() = InjectedBug::kNone;
  std::printf("[%s] %s\n", name, Summarize(r).c_str());
  std::fflush(stdout);
  return r;
}

TEST_CASE("the same build without an injected bug passes") {
  CheckResult r = ExploreWithBug(InjectedBug::kNone, 3, "no bug");
  INFO(Summarize(r));
  CHECK(r.ok);
}

TEST_CASE("copying a page out before write-protecting it is caught as a lost write") {
  CheckResult r = ExploreWithBug(InjectedBug::kCopyOutBeforeProtect, 2, "copy-out before protect");
  INFO(Summarize(r));
  REQUIRE_FALSE(r.ok);
  CHECK(r.violation.find("stale read") != std::string::npos);
  REQUIRE(r.trace.size() > 3);
  // The trace shows the race itself: the copy, then a store that the copy does not contain.
  bool copy_then_store = false;
  for (size_t i = 0; i + 1 < r.trace.size(); ++i) {
    if (r.trace[i].find("CopyOut") != std::string::npos) {
      for (size_t j = i + 1; j < r.trace.size(); ++j) {
        if (r.trace[j].find("WriteProtect") != std::string::npos) break;
        if (r.trace[j].find("vCPU writes") != std::string::npos) copy_then_store = true;
      }
    }
  }
  CHECK(copy_then_store);
}

TEST_CASE("granting a write while a sharer was never invalidated is caught") {
  CheckResult r = ExploreWithBug(InjectedBug::kSkipOneInvalidate, 3, "skip one invalidate");
  INFO(Summarize(r));
  REQUIRE_FALSE(r.ok);
  CHECK((r.violation.find("single-writer") != std::string::npos ||
         r.violation.find("stale read") != std::string::npos));
  CHECK(r.trace.size() > 3);
}

}  // namespace
}  // namespace amalgam::directory
