// Cluster flags: parsing out of argv, clear errors, and the RAM partition onto nodes.
#include "vmm/node/cluster_flags.h"

#include <catch2/catch.hpp>

namespace amalgam::vmm::node {
namespace {

absl::StatusOr<ClusterFlags> Parse(std::vector<std::string> args,
                                   std::vector<std::string>* rest = nullptr) {
  absl::StatusOr<ClusterFlags> f = ExtractClusterFlags(&args);
  if (rest != nullptr) *rest = args;
  return f;
}

TEST_CASE("cluster flags are picked out of argv; the rest is left for vmm/config") {
  std::vector<std::string> rest;
  auto f = Parse({"--kernel", "k.elf", "--node-id", "0", "--peers=0=127.0.0.1:7000,1=h:7001",
                  "--cluster-key", "key", "--memory", "64M", "--node-memory", "0=16M,1=48M",
                  "--local-memory=8M", "--metrics-out", "m.txt"},
                 &rest);
  REQUIRE(f.ok());
  CHECK(f->enabled);
  CHECK(f->node_id == 0);
  CHECK(f->peers.size() == 2);
  CHECK(f->peers.at(1) == "h:7001");
  CHECK(f->cluster_key_file == "key");
  CHECK(f->node_memory.at(1) == (48u << 20));
  CHECK(f->local_memory_bytes == (8u << 20));
  CHECK(f->metrics_out == "m.txt");
  CHECK(f->fabric == "tcp");
  CHECK(rest == std::vector<std::string>{"--kernel", "k.elf", "--memory", "64M"});

  auto none = Parse({"--kernel", "k.elf"}, &rest);
  REQUIRE(none.ok());
  CHECK_FALSE(none->enabled);
  CHECK(rest.size() == 2);
}

TEST_CASE("bad cluster flags name the problem") {
  auto msg = [](std::vector<std::string> a) {
    auto f = Parse(std::move(a));
    REQUIRE_FALSE(f.ok());
    return std::string(f.status().message());
  };
  CHECK_THAT(msg({"--peers", "0=a:1"}), Catch::Contains("--node-id"));
  CHECK_THAT(msg({"--node-id", "0", "--cluster-key", "k"}), Catch::Contains("--peers is required"));
  CHECK_THAT(msg({"--node-id", "0", "--peers", "0=a:1,1=b:2"}), Catch::Contains("--cluster-key"));
  CHECK_THAT(msg({"--node-id", "2", "--peers", "0=a:1,1=b:2", "--cluster-key", "k"}),
             Catch::Contains("must list this node"));
  CHECK_THAT(msg({"--node-id", "0", "--peers", "0=a:1,2=b:2", "--cluster-key", "k"}),
             Catch::Contains("without gaps"));
  CHECK_THAT(msg({"--node-id", "0", "--peers", "0=a:1,0=b:2", "--cluster-key", "k"}),
             Catch::Contains("twice"));
  CHECK_THAT(msg({"--node-id", "x", "--peers", "0=a:1", "--cluster-key", "k"}),
             Catch::Contains("--node-id"));
  CHECK_THAT(msg({"--node-id", "0", "--peers", "0=a:1", "--cluster-key", "k", "--fabric", "rdma"}),
             Catch::Contains("unknown transport"));
  CHECK_THAT(
      msg({"--node-id", "0", "--peers", "0=a:1", "--cluster-key", "k", "--node-memory", "0=lots"}),
      Catch::Contains("--node-memory"));
  CHECK_THAT(msg({"--node-id"}), Catch::Contains("needs a value"));
}

TEST_CASE("RAM is partitioned by --node-memory, in node order; shares must add up") {
  auto f = Parse({"--node-id", "1", "--peers", "0=a:1,1=b:2,2=c:3", "--cluster-key", "k",
                  "--node-memory", "0=16M,1=32M,2=16M"});
  REQUIRE(f.ok());
  auto homes = PlanHomes(*f, 64u << 20);
  REQUIRE(homes.ok());
  CHECK(*homes->HomeOf(0) == 0);
  CHECK(*homes->HomeOf(4095) == 0);
  CHECK(*homes->HomeOf(4096) == 1);
  CHECK(*homes->HomeOf(12287) == 1);
  CHECK(*homes->HomeOf(12288) == 2);
  CHECK_FALSE(homes->HomeOf(16384).ok());

  auto bad = PlanHomes(*f, 128u << 20);
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(std::string(bad.status().message()), Catch::Contains("sum to 64 MiB"));

  auto missing = Parse(
      {"--node-id", "0", "--peers", "0=a:1,1=b:2", "--cluster-key", "k", "--node-memory", "0=64M"});
  REQUIRE(missing.ok());
  CHECK_THAT(std::string(PlanHomes(*missing, 64u << 20).status().message()),
             Catch::Contains("no share for node 1"));

  auto even = Parse({"--node-id", "0", "--peers", "0=a:1,1=b:2", "--cluster-key", "k"});
  REQUIRE(even.ok());
  auto split = PlanHomes(*even, 64u << 20);
  REQUIRE(split.ok());
  CHECK(*split->HomeOf(8191) == 0);
  CHECK(*split->HomeOf(8192) == 1);
}

TEST_CASE("RAM above the 3 GiB hole is partitioned too") {
  auto f = Parse({"--node-id", "0", "--peers", "0=a:1,1=b:2", "--cluster-key", "k", "--node-memory",
                  "0=2G,1=2G"});
  REQUIRE(f.ok());
  auto homes = PlanHomes(*f, 4ull << 30);
  REQUIRE(homes.ok());
  CHECK(*homes->HomeOf((2ull << 30) / 4096 - 1) == 0);
  CHECK(*homes->HomeOf((2ull << 30) / 4096) == 1);
  CHECK(*homes->HomeOf((4ull << 30) / 4096) == 1);       // first page above 4 GiB
  CHECK_FALSE(homes->HomeOf((3ull << 30) / 4096).ok());  // the hole
}

}  // namespace
}  // namespace amalgam::vmm::node
