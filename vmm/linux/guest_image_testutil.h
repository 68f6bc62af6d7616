// Finding the Debian guest image that tools/make-guest.sh builds (never committed) from a test.
// Tests that need it print SKIPPED and pass when it has not been built.
// Thread-safety: thread-compatible (reads the environment and the file system).
#ifndef AMALGAM_VMM_LINUX_GUEST_IMAGE_TESTUTIL_H_
#define AMALGAM_VMM_LINUX_GUEST_IMAGE_TESTUTIL_H_

#include <cstdint>
#include <string>
#include <vector>

namespace amalgam::vmm::linux_boot::testing {

// $AMALGAM_GUEST_DIR, else out/guest at the workspace root (found through this package's BUILD
// file, a runfile symlink into the source tree); "" when neither is known.
std::string GuestImageDir();

// True when every file in `names` exists in GuestImageDir() (returned in *dir). Otherwise prints
// "SKIPPED: no <path>" with how to build the image (stdout and a Catch2 WARN) and returns false.
bool HaveGuestImageFiles(const std::vector<std::string>& names, std::string* dir);

// The whole file; false when it cannot be read.
bool ReadWholeFile(const std::string& path, std::vector<uint8_t>* out);

}  // namespace amalgam::vmm::linux_boot::testing

#endif  // AMALGAM_VMM_LINUX_GUEST_IMAGE_TESTUTIL_H_
