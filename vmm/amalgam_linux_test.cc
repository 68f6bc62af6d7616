// The real Debian kernel (tools/make-guest.sh OUTDIR, never committed) booted by the `amalgam`
// binary. The guest directory is $AMALGAM_GUEST_DIR, else out/guest at the workspace root; each
// test prints SKIPPED and passes when its files are absent. Each BUILD target runs one case:
// - pvh: vmlinux + initramfs through PVH: banner, our E820 map, the initrd and our ACPI tables;
// - bzimage: vmlinuz through the 64-bit boot protocol: banner and E820 map (minutes on PVM:
//   the decompressor runs emulated);
// - smp: 2 vCPUs to the initramfs' GUEST-READY, 2 CPUs online, ACPI power-off (exit 0). Needs
//   hardware virtualization: on a PVM host Linux dies at `lock cmpxchg16b` long before /init.
// Every run is stopped (SIGTERM) as soon as what it checks has been printed.
#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <iostream>
#include <string>

#include "vmm/linux/guest_image_testutil.h"
#include "vmm/run_process_testutil.h"

namespace amalgam::vmm {
namespace {

using linux_boot::testing::HaveGuestImageFiles;

bool HasHardwareVirtualization() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    line += ' ';
    if (line.find(" vmx ") != std::string::npos || line.find(" svm ") != std::string::npos) {
      return true;
    }
  }
  return false;
}

bool Has(const ProcessResult& r, const std::string& s) {
  return r.out.find(s) != std::string::npos;
}

constexpr const char* kCmdline = "earlyprintk=ttyS0 console=ttyS0 noxsave";

// Boots `kernel` (with the initramfs, 512 MiB) until `last` is printed, then checks what every
// boot path prints first: the banner, our command line, and the low E820 entries.
ProcessResult BootToLine(const std::string& dir, const std::string& kernel, const std::string& last,
                         int deadline_seconds) {
  ProcessResult r =
      RunProcess({AmalgamBinary(), "--kernel", dir + "/" + kernel, "--initrd",
                  dir + "/initramfs.cpio.gz", "--memory", "512M", "--cmdline", kCmdline},
                 {}, deadline_seconds, last);
  INFO("stdout: " << r.out.substr(0, 4000));
  INFO("stderr: " << r.err);
  CHECK_FALSE(r.timed_out);
  CHECK(Has(r, "Linux version "));
  CHECK(Has(r, std::string("Command line: ") + kCmdline));
  CHECK(Has(r, "BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable"));
  CHECK(Has(r, "BIOS-e820: [mem 0x000000000009fc00-0x00000000000fffff] reserved"));
  CHECK(Has(r, last));
  CHECK(r.exit_code == 0);  // our SIGTERM
  return r;
}

TEST_CASE("linux pvh: vmlinux + initramfs print the banner, our E820, the initrd and ACPI",
          "[pvh]") {
  std::string dir;
  if (!HaveGuestImageFiles({"vmlinux", "initramfs.cpio.gz"}, &dir)) return;
  // Setup_arch prints these in order; the last one ends the run.
  ProcessResult r = BootToLine(dir, "vmlinux", "ACPI: Reserving APIC table memory", 600);
  INFO("stdout: " << r.out.substr(0, 4000));
  CHECK(Has(r, "BIOS-e820: [mem 0x0000000000100000-0x000000001fffffff] usable"));
  CHECK(Has(r, "RAMDISK: [mem "));                 // the start_info module reached the kernel
  CHECK(Has(r, "ACPI: RSDP 0x00000000000E0000"));  // start_info.rsdp_paddr
  CHECK(Has(r, "ACPI: APIC 0x"));
}

TEST_CASE("linux bzimage: vmlinuz through the 64-bit boot protocol prints the banner",
          "[bzimage]") {
  std::string dir;
  if (!HaveGuestImageFiles({"vmlinuz", "initramfs.cpio.gz"}, &dir)) return;
  // The decompressor runs emulated on PVM: minutes.
  BootToLine(dir, "vmlinuz", "BIOS-e820: [mem 0x0000000000100000-0x000000001fffffff] usable", 840);
}

TEST_CASE("linux smp: 2 vCPUs reach GUEST-READY, count 2 CPUs and power off", "[smp]") {
  if (!HasHardwareVirtualization()) {
    std::cout << "SKIPPED: needs hardware virtualization (vmx/svm): this host's /dev/kvm is PVM\n";
    WARN("SKIPPED: needs hardware virtualization (vmx/svm): this host's /dev/kvm is PVM");
    return;
  }
  std::string dir;
  if (!HaveGuestImageFiles({"vmlinux", "initramfs.cpio.gz"}, &dir)) return;
  // mods=0: no virtio devices here; run=nproc prints the online CPU count; then /init powers off.
  ProcessResult r = RunProcess(
      {AmalgamBinary(), "--kernel", dir + "/vmlinux", "--initrd", dir + "/initramfs.cpio.gz",
       "--memory", "512M", "--vcpus", "2", "--cmdline", "console=ttyS0 quiet mods=0 run=nproc"},
      {}, 600);
  std::string out = r.out;
  out.erase(std::remove(out.begin(), out.end(), '\r'), out.end());
  INFO("stdout: " << out.substr(0, 6000));
  INFO("stderr: " << r.err);
  CHECK_FALSE(r.timed_out);
  CHECK(out.find("GUEST-READY") != std::string::npos);
  CHECK(out.find("\n2\nGUEST-RUN-EXIT=0") != std::string::npos);
  CHECK(out.find("GUEST-HALT") != std::string::npos);
  CHECK(r.exit_code == 0);
  CHECK(r.err.find("power-off") != std::string::npos);
}

}  // namespace
}  // namespace amalgam::vmm
