// Exhaustive and randomized checks of the directory protocol (see protocol_model.h for what is
// asserted in every state).
#include "directory/protocol_model.h"

#include <catch2/catch.hpp>
#include <cstdio>

namespace amalgam::directory {
namespace {

CheckResult RunAndPrint(const char* name, const ModelConfig& c) {
  CheckResult r = ExploreAll(c);
  std::printf("[%s] %u nodes x %u pages x %u ops/node, %u evictions/node: %s", name, c.nodes,
              c.pages, c.ops_per_node, c.evictions_per_node, Summarize(r).c_str());
  std::fflush(stdout);
  return r;
}

TEST_CASE("every interleaving of 3 nodes x 2 pages x 2 ops keeps memory coherent") {
  ModelConfig c;
  c.nodes = 3;
  c.pages = 2;
  c.ops_per_node = 2;
  c.evictions_per_node = 0;
  CheckResult r = RunAndPrint("exhaustive", c);
  INFO(Summarize(r));
  CHECK(r.ok);
  CHECK_FALSE(r.truncated);
  CHECK(r.states > 1000);
  CHECK(r.reads_checked > 0);
}

}  // namespace
}  // namespace amalgam::directory
