// Test helpers (testonly): deterministic page contents and page-grant messages.
#ifndef AMALGAM_FABRIC_TEST_PAGES_H_
#define AMALGAM_FABRIC_TEST_PAGES_H_

#include <cstdint>
#include <vector>

#include "fabric/frame.h"
#include "fabric/message.h"

namespace amalgam::fabric::testing {

// Page `n`'s contents: every byte depends on n and its offset, so swaps and shifts show.
inline std::vector<uint8_t> PagePattern(uint64_t n) {
  std::vector<uint8_t> p(kPageSize);
  uint64_t x = n * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < p.size(); ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p[i] = static_cast<uint8_t>(x);
  }
  return p;
}

inline bool PageMatches(uint64_t n, absl::Span<const uint8_t> page) {
  auto want = PagePattern(n);
  return page.size() == want.size() && std::equal(want.begin(), want.end(), page.begin());
}

inline FlatMessage PageGrant(uint64_t page) {
  capnp::MallocMessageBuilder b;
  auto g = b.initRoot<schema::Message>().initPageGrant();
  g.setPage(page);
  g.setState(schema::PageState::SHARED);
  g.setHasData(true);
  g.setReqId(page);
  return FlatMessage(b);
}

}  // namespace amalgam::fabric::testing

#endif  // AMALGAM_FABRIC_TEST_PAGES_H_
