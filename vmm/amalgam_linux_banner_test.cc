// The real Debian kernel (vmlinux from tools/make-guest.sh, never committed) booted by `amalgam`
// through PVH up to its banner on our 16550: the milestone reachable on this machine kind (PVM
// cannot run a full Linux boot, see DESIGN.md). Skips, saying how to build the kernel, when
// out/guest/vmlinux is absent.
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <string>

#include "vmm/run_process_testutil.h"

namespace amalgam::vmm {
namespace {

std::string Vmlinux() {
  if (const char* dir = getenv("AMALGAM_GUEST_DIR")) return std::string(dir) + "/vmlinux";
  // The BUILD runfile is a symlink into the source tree; out/guest sits at the workspace root.
  char real[PATH_MAX];
  if (realpath("vmm/BUILD", real) == nullptr) return "";
  std::string path(real);
  return path.substr(0, path.size() - std::string("vmm/BUILD").size()) + "out/guest/vmlinux";
}

// The last line checked: SIGTERM goes out once all of it has arrived (output is byte by byte).
constexpr const char* kLastLine = "BIOS-e820: [mem 0x0000000000100000-0x000000001fffffff] usable";

TEST_CASE("linux: the Debian vmlinux prints its banner and our memory map on COM1") {
  std::string kernel = Vmlinux();
  struct stat st;
  if (kernel.empty() || ::stat(kernel.c_str(), &st) != 0) {
    WARN("skipped: no " << kernel << "; build it with tools/make-guest.sh out/guest");
    return;
  }
  ProcessResult r = RunProcess({Runfile("vmm/amalgam"), "--kernel", kernel, "--memory", "512M",
                                "--cmdline", "earlyprintk=ttyS0 console=ttyS0 noxsave"},
                               {}, 240, kLastLine);
  INFO("stdout: " << r.out.substr(0, 2000));
  INFO("stderr: " << r.err);
  CHECK_FALSE(r.timed_out);
  CHECK(r.out.find("Linux version ") != std::string::npos);
  CHECK(r.out.find("Command line: earlyprintk=ttyS0 console=ttyS0 noxsave") != std::string::npos);
  CHECK(r.out.find("BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable") !=
        std::string::npos);
  CHECK(r.out.find("BIOS-e820: [mem 0x000000000009fc00-0x00000000000fffff] reserved") !=
        std::string::npos);
  CHECK(r.out.find(kLastLine) != std::string::npos);
  // Stopped by our SIGTERM once the memory map was printed.
  CHECK(r.exit_code == 0);
}

}  // namespace
}  // namespace amalgam::vmm
