// Exhaustive and randomized checks of the directory protocol (see protocol_model.h for what is
// asserted in every state). Every run prints the number of states explored.
#include "directory/protocol_model.h"

#include <catch2/catch.hpp>
#include <cstdio>

namespace amalgam::directory {
namespace {

#ifdef AMALGAM_SANITIZED
constexpr bool kSanitized = true;  // ~10x slower: the big configurations run in the plain suite
#else
constexpr bool kSanitized = false;
#endif

ModelConfig Config(uint32_t nodes, uint32_t pages, uint32_t ops, uint32_t evictions) {
  ModelConfig c;
  c.nodes = nodes;
  c.pages = pages;
  c.ops_per_node = ops;
  c.evictions_per_node = evictions;
  return c;
}

CheckResult Explore(const ModelConfig& c) {
  CheckResult r = ExploreAll(c);
  std::printf("[exhaustive%s] %u nodes x %u pages x %u ops/node, %u evictions/node: %s",
              c.reduce_invisible_steps ? "" : ", no reduction", c.nodes, c.pages, c.ops_per_node,
              c.evictions_per_node, Summarize(r).c_str());
  std::fflush(stdout);
  return r;
}

void RequireCoherent(const CheckResult& r) {
  INFO(Summarize(r));
  CHECK(r.ok);
  CHECK_FALSE(r.truncated);
  CHECK(r.reads_checked > 0);
  CHECK(r.terminal_states > 0);
}

TEST_CASE("every interleaving of 3 nodes x 2 pages x 2 ops each keeps memory coherent", "[big]") {
  // Each op is any of {read, write} x {page 0, page 1}, so this also covers every program.
  // About 10.6 million states: the plain suite runs it, the sanitizer build runs the two
  // largest sub-configurations instead (see BUILD).
  if (kSanitized) {
    RequireCoherent(Explore(Config(3, 2, 1, 0)));
    RequireCoherent(Explore(Config(3, 1, 2, 0)));
    return;
  }
  CheckResult r = Explore(Config(3, 2, 2, 0));
  RequireCoherent(r);
  CHECK(r.states > 1'000'000u);
}

TEST_CASE("every interleaving with evictions crossing recalls keeps memory coherent") {
  if (!kSanitized) RequireCoherent(Explore(Config(3, 2, 1, 1)));
  RequireCoherent(Explore(Config(2, 2, 2, 1)));
  RequireCoherent(Explore(Config(3, 1, 1, 1)));
}

TEST_CASE("the partial-order reduction agrees with the full interleaving search") {
  // Same verdict, more states without the reduction (the bug-injection test checks that the
  // reduced search still finds real bugs).
  for (ModelConfig c : {Config(2, 2, 2, 0), Config(3, 1, 1, 1)}) {
    CheckResult reduced = Explore(c);
    c.reduce_invisible_steps = false;
    CheckResult full = Explore(c);
    RequireCoherent(full);
    CHECK(reduced.ok == full.ok);
    CHECK(full.states > reduced.states);
  }
}

TEST_CASE("long random runs with many nodes and pages keep memory coherent") {
  ModelConfig c = Config(8, 32, kSanitized ? 40 : 100, 8);
  CheckResult r = RandomWalks(c, /*seed=*/20261125, kSanitized ? 20 : 100);
  std::printf("[random] %u nodes x %u pages x %u ops/node, %u evictions/node: %s", c.nodes, c.pages,
              c.ops_per_node, c.evictions_per_node, Summarize(r).c_str());
  INFO(Summarize(r));
  CHECK(r.ok);
  CHECK(r.reads_checked > 1000);
}

}  // namespace
}  // namespace amalgam::directory
