#include "directory/home_map.h"

#include <catch2/catch.hpp>

namespace amalgam::directory {
namespace {

TEST_CASE("an even split covers every page exactly once") {
  auto m = StaticPartitionHomeMap::Even(10, 3);  // 4 + 3 + 3 pages
  REQUIRE(m.ok());
  CHECK(m->num_nodes() == 3);
  CHECK(*m->HomeOf(0) == 0);
  CHECK(*m->HomeOf(3) == 0);
  CHECK(*m->HomeOf(4) == 1);
  CHECK(*m->HomeOf(6) == 1);
  CHECK(*m->HomeOf(7) == 2);
  CHECK(*m->HomeOf(9) == 2);
  CHECK(m->HomeOf(10).status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("explicit ranges with holes") {
  auto m = StaticPartitionHomeMap::Create({{100, 10, 1}, {0, 50, 0}}, 2);
  REQUIRE(m.ok());
  CHECK(*m->HomeOf(49) == 0);
  CHECK(m->HomeOf(50).status().code() == absl::StatusCode::kNotFound);
  CHECK(*m->HomeOf(105) == 1);
  CHECK(m->HomeOf(110).status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("bad partitions are rejected with a message naming the problem") {
  auto overlap = StaticPartitionHomeMap::Create({{0, 10, 0}, {5, 10, 1}}, 2);
  CHECK(overlap.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(overlap.status().message().find("overlap") != absl::string_view::npos);
  CHECK(StaticPartitionHomeMap::Create({{0, 10, 2}}, 2).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(StaticPartitionHomeMap::Create({{0, 0, 0}}, 2).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(StaticPartitionHomeMap::Create({}, 0).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(StaticPartitionHomeMap::Create({}, kMaxNodes + 1).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(StaticPartitionHomeMap::Even(2, 3).status().code() == absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace amalgam::directory
