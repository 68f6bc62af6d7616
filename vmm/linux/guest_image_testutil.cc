#include "vmm/linux/guest_image_testutil.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <iostream>
#include <iterator>

namespace amalgam::vmm::linux_boot::testing {

std::string GuestImageDir() {
  if (const char* dir = getenv("AMALGAM_GUEST_DIR"); dir != nullptr && *dir != '\0') return dir;
  const std::string anchor = "vmm/linux/BUILD";  // a data dependency of this library
  char real[PATH_MAX];
  if (realpath(anchor.c_str(), real) == nullptr) return "";
  std::string path(real);
  return path.substr(0, path.size() - anchor.size()) + "out/guest";
}

bool HaveGuestImageFiles(const std::vector<std::string>& names, std::string* dir) {
  *dir = GuestImageDir();
  for (const std::string& name : names) {
    struct stat st;
    std::string path = *dir + "/" + name;
    if (dir->empty() || ::stat(path.c_str(), &st) != 0) {
      std::cout << "SKIPPED: no " << path
                << "; build the guest with tools/make-guest.sh OUTDIR and set AMALGAM_GUEST_DIR\n";
      WARN("SKIPPED: no " << path << "; build it with tools/make-guest.sh");
      return false;
    }
  }
  return true;
}

bool ReadWholeFile(const std::string& path, std::vector<uint8_t>* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

}  // namespace amalgam::vmm::linux_boot::testing
