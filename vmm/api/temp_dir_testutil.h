// TempDir (tests only): a fresh directory under /tmp, removed with everything in it at the end.
// Under /tmp rather than TEST_TMPDIR because a Unix socket path must fit in 107 bytes.
// Not thread-safe; owns the directory.
#ifndef AMALGAM_VMM_API_TEMP_DIR_TESTUTIL_H_
#define AMALGAM_VMM_API_TEMP_DIR_TESTUTIL_H_

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>

namespace amalgam::vmm::api::testing {

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/amalgam-api-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string path;
};

}  // namespace amalgam::vmm::api::testing

#endif  // AMALGAM_VMM_API_TEMP_DIR_TESTUTIL_H_
