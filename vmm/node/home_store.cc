#include "vmm/node/home_store.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace amalgam::vmm::node {

absl::StatusOr<std::unique_ptr<HomeStore>> HomeStore::Create(
    const directory::StaticPartitionHomeMap& homes, directory::NodeId self) {
  std::vector<Slice> slices;
  uint64_t pages = 0;
  for (const auto& r : homes.ranges()) {
    if (r.home != self) continue;
    slices.push_back(Slice{r.first, r.count, pages});
    pages += r.count;
  }
  uint8_t* base = nullptr;
  if (pages > 0) {
    void* p = mmap(nullptr, pages * 4096, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      return absl::ResourceExhaustedError(absl::StrCat("home store: cannot map ", pages * 4096,
                                                       " bytes for node ", self, ": ",
                                                       strerror(errno)));
    }
    base = static_cast<uint8_t*>(p);
  }
  return std::unique_ptr<HomeStore>(new HomeStore(std::move(slices), pages, base));
}

HomeStore::~HomeStore() {
  if (base_ != nullptr) munmap(base_, pages_ * 4096);
}

uint8_t* HomeStore::Page(directory::PageNumber page) const {
  auto it = std::upper_bound(slices_.begin(), slices_.end(), page,
                             [](directory::PageNumber p, const Slice& s) { return p < s.first; });
  if (it == slices_.begin()) return nullptr;
  --it;
  if (page - it->first >= it->count) return nullptr;
  return base_ + (it->offset + (page - it->first)) * 4096;
}

}  // namespace amalgam::vmm::node
