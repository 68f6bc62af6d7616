// The `amalgam` binary with each kind of bad input: a non-zero exit (2) and exactly one clear
// line on stderr naming the problem.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "vmm/run_process_testutil.h"

namespace amalgam::vmm {
namespace {

std::string Amalgam() { return Runfile("vmm/amalgam"); }
std::string Guest() { return Runfile("guest/test_guest.elf"); }

std::string TempFile(const std::string& name, const std::string& contents) {
  const char* dir = std::getenv("TEST_TMPDIR");
  std::string path = std::string(dir ? dir : "/tmp") + "/" + name;
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

std::string Prefix(const std::string& path, size_t n) {
  std::ifstream in(path, std::ios::binary);
  std::string s(n, '\0');
  in.read(s.data(), static_cast<std::streamsize>(n));
  s.resize(static_cast<size_t>(in.gcount()));
  return s;
}

void ExpectOneLine(const std::vector<std::string>& args, const std::string& needle,
                   const std::vector<std::pair<std::string, std::string>>& env = {}) {
  std::vector<std::string> argv = {Amalgam()};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessResult r = RunProcess(argv, env, 120);
  INFO("args:");
  for (const auto& a : args) INFO("  " << a.substr(0, 80));
  INFO("stderr: " << r.err);
  CHECK_FALSE(r.timed_out);
  CHECK(r.exit_code == 2);
  CHECK(r.err.find(needle) != std::string::npos);
  CHECK(r.err.rfind("amalgam: ", 0) == 0);
  // One line: a single newline, at the end.
  CHECK(r.err.find('\n') == r.err.size() - 1);
  CHECK(r.out.empty());
}

TEST_CASE("bad input: flags") {
  ExpectOneLine({}, "--kernel is required");
  ExpectOneLine({"--kernel"}, "--kernel needs a value");
  ExpectOneLine({"--kernel", Guest(), "--bogus"}, "unknown flag --bogus");
  ExpectOneLine({"--kernel", Guest(), "--vcpus", "many"}, "--vcpus many: not a vCPU count");
  ExpectOneLine({"--kernel", Guest(), "--memory", "lots"}, "--memory lots: not a number");
  ExpectOneLine({"--kernel", Guest(), "--cpu-template", "no-such-cpu"},
                "--cpu-template: unknown CPU template \"no-such-cpu\"; available: ");
}

TEST_CASE("bad input: kernel files") {
  ExpectOneLine({"--kernel", "/nonexistent/vmlinux"}, "kernel /nonexistent/vmlinux: no such file");
  std::string junk = TempFile("junk.txt", "this is not a kernel\n");
  ExpectOneLine({"--kernel", junk},
                "not an ELF file (bad magic); amalgam boots PVH ELF images such as a vmlinux or "
                "the test guest");
  // The amalgam binary itself is an x86-64 ELF without a PVH note.
  ExpectOneLine({"--kernel", Amalgam()}, "ELF has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)");
  std::string truncated = TempFile("truncated.elf", Prefix(Guest(), 100));
  ExpectOneLine({"--kernel", truncated}, "truncated");
  ExpectOneLine({"--kernel", "/"}, "not a regular file");
}

// A setup header ("HdrS" at 0x202) makes amalgam load the file as a bzImage.
std::string FakeBzImage(const std::string& name, uint16_t version, size_t size) {
  std::string image(size, '\0');
  image[0x1f1] = 1;  // setup_sects
  image[0x1fe] = 0x55;
  image[0x1ff] = static_cast<char>(0xaa);
  image.replace(0x202, 4, "HdrS");
  image[0x206] = static_cast<char>(version & 0xff);
  image[0x207] = static_cast<char>(version >> 8);
  return TempFile(name, image);
}

TEST_CASE("bad input: bzImages and initrds") {
  std::string old = FakeBzImage("old.bzImage", 0x0209, 4096);
  ExpectOneLine({"--kernel", old}, "kernel " + old + ": ");
  ExpectOneLine({"--kernel", old}, "boot protocol");
  std::string truncated = FakeBzImage("truncated.bzImage", 0x020f, 0x300);
  ExpectOneLine({"--kernel", truncated}, "kernel " + truncated + ": ");
  ExpectOneLine({"--kernel", Guest(), "--initrd", "/nonexistent/initrd.img"},
                "initrd /nonexistent/initrd.img: no such file");
  std::string big = TempFile("big.initrd", std::string(5 << 20, 'x'));
  ExpectOneLine({"--kernel", Guest(), "--memory", "4M", "--initrd", big},
                "initrd " + big + ": initrd is ");
}

TEST_CASE("bad input: memory") {
  ExpectOneLine({"--kernel", Guest(), "--memory", "0"}, "--memory must be larger than 0");
  ExpectOneLine({"--kernel", Guest(), "--memory", "1T"}, "more than this host can back");
  ExpectOneLine({"--kernel", Guest(), "--memory", "512K"}, "outside guest RAM");
}

TEST_CASE("bad input: vCPUs and KVM") {
  ExpectOneLine({"--kernel", Guest(), "--vcpus", "0"}, "--vcpus must be at least 1");
  ExpectOneLine({"--kernel", Guest(), "--vcpus", "100000"},
                "is more than KVM allows on this host (KVM_CAP_MAX_VCPUS = ");
  ExpectOneLine({"--kernel", Guest()}, "no /nonexistent/kvm: KVM is not available",
                {{"AMALGAM_KVM_DEVICE", "/nonexistent/kvm"}});
}

TEST_CASE("bad input: command line and serial output") {
  ExpectOneLine({"--kernel", Guest(), "--cmdline", std::string(5000, 'x')},
                "--cmdline is 5000 bytes; the limit is 4095");
  ExpectOneLine({"--kernel", Guest(), "--serial-out", "/nonexistent/dir/serial.txt"},
                "--serial-out /nonexistent/dir/serial.txt: cannot open");
}

TEST_CASE("--help documents flags and exit codes and exits 0") {
  ProcessResult r = RunProcess({Amalgam(), "--help"}, {}, 60);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("usage: amalgam --kernel PATH") == 0);
  CHECK(r.out.find("exit status:") != std::string::npos);
  CHECK(r.err.empty());
}

}  // namespace
}  // namespace amalgam::vmm
