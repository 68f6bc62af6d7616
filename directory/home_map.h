// Home assignment: which node's directory serializes the requests for a page.
//
// Thread-safety: HomeMap implementations are immutable after creation, safe to share across
// threads. Ownership: callers keep the map alive for as long as any directory or cache uses it.
#ifndef AMALGAM_DIRECTORY_HOME_MAP_H_
#define AMALGAM_DIRECTORY_HOME_MAP_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "directory/protocol.h"

namespace amalgam::directory {

// Interface, so that pages can later change home (rebalancing) without touching the protocol.
class HomeMap {
 public:
  virtual ~HomeMap() = default;
  // The home of `page`, or NOT_FOUND for a page outside guest RAM.
  virtual absl::StatusOr<NodeId> HomeOf(PageNumber page) const = 0;
  // Nodes are numbered 0 .. num_nodes()-1.
  virtual uint32_t num_nodes() const = 0;
};

// A static partition of guest-physical page ranges onto nodes.
class StaticPartitionHomeMap : public HomeMap {
 public:
  struct Range {
    PageNumber first = 0;  // first page of the range
    PageNumber count = 0;  // number of pages
    NodeId home = 0;
  };

  // Ranges must be non-empty, not overlap, and name nodes < num_nodes (1..kMaxNodes).
  static absl::StatusOr<StaticPartitionHomeMap> Create(std::vector<Range> ranges,
                                                       uint32_t num_nodes);
  // `total_pages` pages from page 0, split into `num_nodes` contiguous, near-equal slices.
  static absl::StatusOr<StaticPartitionHomeMap> Even(PageNumber total_pages, uint32_t num_nodes);

  absl::StatusOr<NodeId> HomeOf(PageNumber page) const override;
  uint32_t num_nodes() const override { return num_nodes_; }
  // The ranges, sorted by first page (e.g. to size a node's home store).
  const std::vector<Range>& ranges() const { return ranges_; }

 private:
  StaticPartitionHomeMap(std::vector<Range> ranges, uint32_t num_nodes)
      : ranges_(std::move(ranges)), num_nodes_(num_nodes) {}
  std::vector<Range> ranges_;  // sorted by `first`
  uint32_t num_nodes_;
};

}  // namespace amalgam::directory

#endif  // AMALGAM_DIRECTORY_HOME_MAP_H_
