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

std::string TempFile(const std::string& name, const std::string& contents) {
  std::string path = TestTempPath(name);
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
  std::vector<std::string> argv = {AmalgamBinary()};
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
  ExpectOneLine({"--kernel", TestGuestElf(), "--bogus"}, "unknown flag --bogus");
  ExpectOneLine({"--kernel", TestGuestElf(), "--vcpus", "many"}, "--vcpus many: not a vCPU count");
  ExpectOneLine({"--kernel", TestGuestElf(), "--memory", "lots"}, "--memory lots: not a number");
  ExpectOneLine({"--kernel", TestGuestElf(), "--cpu-template", "no-such-cpu"},
                "--cpu-template: unknown CPU template \"no-such-cpu\"; available: ");
}

TEST_CASE("bad input: kernel files") {
  ExpectOneLine({"--kernel", "/nonexistent/vmlinux"}, "kernel /nonexistent/vmlinux: no such file");
  std::string junk = TempFile("junk.txt", "this is not a kernel\n");
  ExpectOneLine({"--kernel", junk},
                "not an ELF file (bad magic); amalgam boots PVH ELF images such as a vmlinux or "
                "the test guest");
  // The amalgam binary itself is an x86-64 ELF without a PVH note.
  ExpectOneLine({"--kernel", AmalgamBinary()},
                "ELF has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)");
  std::string truncated = TempFile("truncated.elf", Prefix(TestGuestElf(), 100));
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
  ExpectOneLine({"--kernel", TestGuestElf(), "--initrd", "/nonexistent/initrd.img"},
                "initrd /nonexistent/initrd.img: no such file");
  std::string big = TempFile("big.initrd", std::string(5 << 20, 'x'));
  ExpectOneLine({"--kernel", TestGuestElf(), "--memory", "4M", "--initrd", big},
                "initrd " + big + ": initrd is ");
}

TEST_CASE("bad input: memory") {
  ExpectOneLine({"--kernel", TestGuestElf(), "--memory", "0"}, "--memory must be larger than 0");
  ExpectOneLine({"--kernel", TestGuestElf(), "--memory", "1T"}, "more than this host can back");
  ExpectOneLine({"--kernel", TestGuestElf(), "--memory", "512K"}, "outside guest RAM");
}

TEST_CASE("bad input: vCPUs and KVM") {
  ExpectOneLine({"--kernel", TestGuestElf(), "--vcpus", "0"}, "--vcpus must be at least 1");
  ExpectOneLine({"--kernel", TestGuestElf(), "--vcpus", "100000"},
                "is more than KVM allows on this host (KVM_CAP_MAX_VCPUS = ");
  ExpectOneLine({"--kernel", TestGuestElf()}, "no /nonexistent/kvm: KVM is not available",
                {{"AMALGAM_KVM_DEVICE", "/nonexistent/kvm"}});
}

TEST_CASE("bad input: command line and serial output") {
  ExpectOneLine({"--kernel", TestGuestElf(), "--cmdline", std::string(5000, 'x')},
                "--cmdline is 5000 bytes; the limit is 4095");
  ExpectOneLine({"--kernel", TestGuestElf(), "--serial-out", "/nonexistent/dir/serial.txt"},
                "--serial-out /nonexistent/dir/serial.txt: cannot open");
}

TEST_CASE("--help documents flags and exit codes and exits 0") {
  ProcessResult r = RunProcess({AmalgamBinary(), "--help"}, {}, 60);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("usage: amalgam --kernel PATH") == 0);
  CHECK(r.out.find("exit status:") != std::string::npos);
  CHECK(r.err.empty());
}

}  // namespace
}  // namespace amalgam::vmm
