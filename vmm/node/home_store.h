// HomeStore: the RAM a node contributes to the guest: the backing copies of the pages it is home
// for, in one anonymous mapping sized to its share (MAP_NORESERVE: untouched pages cost nothing).
// Thread-safety: not thread-safe; the node's event loop owns it (and seeding before the loop).
// Ownership: owns the mapping.
#ifndef AMALGAM_VMM_NODE_HOME_STORE_H_
#define AMALGAM_VMM_NODE_HOME_STORE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "directory/home_map.h"

namespace amalgam::vmm::node {

class HomeStore {
 public:
  // Maps the pages `homes` assigns to `self` (possibly none).
  static absl::StatusOr<std::unique_ptr<HomeStore>> Create(
      const directory::StaticPartitionHomeMap& homes, directory::NodeId self);
  ~HomeStore();
  HomeStore(const HomeStore&) = delete;
  HomeStore& operator=(const HomeStore&) = delete;

  // The 4 KiB home copy of `page`, or null when `page` is not homed here.
  uint8_t* Page(directory::PageNumber page) const;
  uint64_t pages() const { return pages_; }

 private:
  struct Slice {
    directory::PageNumber first;
    uint64_t count;
    uint64_t offset;  // in pages, into the mapping
  };
  HomeStore(std::vector<Slice> slices, uint64_t pages, uint8_t* base)
      : slices_(std::move(slices)), pages_(pages), base_(base) {}
  std::vector<Slice> slices_;  // sorted by first
  uint64_t pages_;
  uint8_t* base_;  // null when pages_ == 0
};

}  // namespace amalgam::vmm::node

#endif  // AMALGAM_VMM_NODE_HOME_STORE_H_
