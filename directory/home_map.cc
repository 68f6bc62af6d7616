#include "directory/home_map.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace amalgam::directory {

absl::StatusOr<StaticPartitionHomeMap> StaticPartitionHomeMap::Create(std::vector<Range> ranges,
                                                                      uint32_t num_nodes) {
  if (num_nodes == 0 || num_nodes > kMaxNodes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "num_nodes is %u; a cluster has 1 to %u nodes (sharer sets are 64-bit masks)", num_nodes,
        kMaxNodes));
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.first < b.first; });
  for (size_t i = 0; i < ranges.size(); ++i) {
    const Range& r = ranges[i];
    if (r.count == 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "range at page %u has count 0; give every range at least one page", r.first));
    }
    if (r.first + r.count < r.first) {
      return absl::InvalidArgumentError(
          absl::StrFormat("range at page %u with count %u wraps around", r.first, r.count));
    }
    if (r.home >= num_nodes) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "range at page %u has home %u but the cluster has %u nodes", r.first, r.home, num_nodes));
    }
    if (i > 0 && ranges[i - 1].first + ranges[i - 1].count > r.first) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "ranges at pages %u and %u overlap; make them disjoint", ranges[i - 1].first, r.first));
    }
  }
  return StaticPartitionHomeMap(std::move(ranges), num_nodes);
}

absl::StatusOr<StaticPartitionHomeMap> StaticPartitionHomeMap::Even(PageNumber total_pages,
                                                                    uint32_t num_nodes) {
  if (num_nodes == 0 || num_nodes > kMaxNodes || total_pages < num_nodes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "cannot split %u pages over %u nodes; need 1 to %u nodes and at least one page each",
        total_pages, num_nodes, kMaxNodes));
  }
  std::vector<Range> ranges;
  PageNumber first = 0;
  for (NodeId n = 0; n < num_nodes; ++n) {
    PageNumber count = total_pages / num_nodes + (n < total_pages % num_nodes ? 1 : 0);
    ranges.push_back({first, count, n});
    first += count;
  }
  return Create(std::move(ranges), num_nodes);
}

absl::StatusOr<NodeId> StaticPartitionHomeMap::HomeOf(PageNumber page) const {
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), page,
                             [](PageNumber p, const Range& r) { return p < r.first; });
  if (it != ranges_.begin()) {
    --it;
    if (page - it->first < it->count) return it->home;
  }
  return absl::NotFoundError(
      absl::StrFormat("page %u is not in guest RAM (no home range covers it)", page));
}

}  // namespace amalgam::directory
