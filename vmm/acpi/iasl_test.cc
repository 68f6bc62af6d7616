// Every generated table must disassemble with Debian's iasl (acpica-tools) without an error or a
// warning, and the disassembled DSDT must compile back without one. iasl is the same parser
// family the Linux kernel uses (ACPICA), so this is the closest check short of booting a guest.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "vmm/acpi/acpi.h"

namespace amalgam::vmm::acpi {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string WorkDir() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(tmp ? tmp : "/tmp", "/iasl.", getpid());
  REQUIRE(std::system(absl::StrCat("mkdir -p '", dir, "'").c_str()) == 0);
  return dir;
}

bool HaveIasl() { return std::system("command -v iasl >/dev/null 2>&1") == 0; }
bool HaveAcpiexec() { return std::system("command -v acpiexec >/dev/null 2>&1") == 0; }

// Runs `args` in `dir` and returns (exit status, combined output).
std::pair<int, std::string> Run(const std::string& dir, const std::string& args) {
  std::string log = dir + "/run.log";
  std::string cmd = absl::StrCat("cd '", dir, "' && ", args, " >'", log, "' 2>&1");
  int rc = std::system(cmd.c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, ReadFile(log)};
}

// iasl reports problems with these words (messages, and comments in the .dsl output). Returns
// the offending lines; iasl's own summary ("0 Errors, 0 Warnings") is not a problem.
std::vector<std::string> Problems(const std::string& text) {
  std::vector<std::string> found;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    std::string lower = absl::AsciiStrToLower(line);
    for (const char* bad : {"error", "warning", "invalid", "unknown", "incorrect", "**** "}) {
      for (size_t pos = 0; (pos = lower.find(bad, pos)) != std::string::npos; ++pos) {
        bool summary = pos >= 2 && lower.compare(pos - 2, 2, "0 ") == 0;
        if (!summary) found.emplace_back(line);
      }
    }
  }
  return found;
}

void CheckClean(const std::string& what, const std::string& text) {
  INFO(what << ":\n" << text);
  CHECK(Problems(text).empty());
}

AcpiConfig RichConfig() {
  AcpiConfig c;
  c.num_vcpus = 4;
  c.irq0_to_gsi2 = true;
  c.sleep_control_port = 0x600;
  for (uint64_t i = 0; i < 8; ++i) {
    MmioDevice d;
    d.base = 0xd0000000 + i * 0x1000;
    d.size = 0x1000;
    d.gsi = static_cast<uint32_t>(5 + i);
    d.level_triggered = i % 2 == 1;
    c.virtio_mmio.push_back(d);
  }
  return c;
}

void DisassembleAll(const AcpiConfig& config, const std::string& label) {
  absl::StatusOr<AcpiTables> tables = Build(config);
  REQUIRE(tables.ok());
  std::string dir = WorkDir() + "/" + label;
  REQUIRE(std::system(absl::StrCat("mkdir -p '", dir, "'").c_str()) == 0);
  for (const AcpiBlob& blob : tables->blobs) {
    // iasl 20200925 only opens files whose first 4 bytes are a table name followed by the table
    // length, which the RSDP ("RSD PTR ") is not; tables_test checks the RSDP's fields and both
    // checksums instead.
    if (blob.signature == "RSD PTR ") continue;
    std::string name =
        blob.signature == "RSD PTR " ? "rsdp" : absl::AsciiStrToLower(blob.signature);
    std::string dat = absl::StrCat(dir, "/", name, ".dat");
    {
      std::ofstream out(dat, std::ios::binary);
      out.write(reinterpret_cast<const char*>(blob.bytes.data()), blob.bytes.size());
    }
    auto [rc, output] = Run(dir, absl::StrCat("iasl -d ", name, ".dat"));
    INFO(label << " " << blob.signature);
    CHECK(rc == 0);
    std::string dsl = ReadFile(absl::StrCat(dir, "/", name, ".dsl"));
    REQUIRE(!dsl.empty());
    CheckClean(name + " (iasl output)", output);
    CheckClean(name + ".dsl", dsl);
    if (blob.signature == "DSDT") {
      // The disassembled AML must compile back cleanly and, with iasl's optimizations off (-oa),
      // to the same bytes, except that iasl writes 0 ("not computed") as each EndTag checksum.
      auto [crc, coutput] = Run(dir, "iasl -oa -p recompiled dsdt.dsl");
      CHECK(crc == 0);
      CheckClean("dsdt.dsl recompiled", coutput);
      CHECK(coutput.find("0 Errors, 0 Warnings, 0 Remarks") != std::string::npos);
      std::string again = ReadFile(dir + "/recompiled.aml");
      REQUIRE(again.size() == blob.bytes.size());
      for (size_t i = kSdtHeaderSize; i < again.size(); ++i) {
        auto ours = blob.bytes[i];
        auto theirs = static_cast<uint8_t>(again[i]);
        if (ours != theirs) {
          INFO("AML byte " << i << ": ours " << int{ours} << ", iasl's " << int{theirs});
          CHECK((blob.bytes[i - 1] == 0x79 && theirs == 0));
        }
      }
      // The devices the guest must find are in the disassembly.
      CHECK(dsl.find("EisaId (\"PNP0501\")") != std::string::npos);
      CHECK(dsl.find("Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )") !=
            std::string::npos);
      size_t devices = 0;
      for (size_t p = 0; (p = dsl.find("\"LNRO0005\"", p)) != std::string::npos; ++p) ++devices;
      CHECK(devices == config.virtio_mmio.size());
      CHECK((dsl.find("Memory32Fixed (ReadWrite,") != std::string::npos) ==
            !config.virtio_mmio.empty());
      bool any_level = false;
      for (const MmioDevice& d : config.virtio_mmio) any_level = any_level || d.level_triggered;
      CHECK((dsl.find("Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive, ,, )") !=
             std::string::npos) == any_level);
    }
    if (blob.signature == "FACP") {
      CHECK(dsl.find("Hardware Reduced (V5) : 1") != std::string::npos);
    }
    if (blob.signature == "APIC") {
      CHECK(dsl.find(absl::StrFormat("Local Apic ID : %02X\n", config.num_vcpus - 1)) !=
            std::string::npos);
      CHECK(dsl.find(absl::StrFormat("Local Apic ID : %02X\n", config.num_vcpus)) ==
            std::string::npos);
      CHECK(dsl.find("Address : FEC00000") != std::string::npos);
    }
  }
  if (HaveAcpiexec()) {
    // ACPICA's interpreter (the one in the Linux kernel) loads the namespace and evaluates the
    // objects the kernel will: _STA and _CRS of every device, and \_S5 when present.
    std::string cmds = "evaluate \\_SB.COM1._STA; evaluate \\_SB.COM1._CRS";
    for (size_t i = 0; i < config.virtio_mmio.size(); ++i) {
      cmds += absl::StrFormat("; evaluate \\_SB.V%03X._CRS", i);
    }
    if (config.sleep_control_port != 0) cmds += "; evaluate \\_S5";
    auto [xrc, xout] =
        Run(dir, absl::StrCat("acpiexec -b '", cmds, "' dsdt.dat facp.dat apic.dat </dev/null"));
    INFO(xout);
    CHECK(xrc == 0);
    CheckClean("acpiexec", xout);
    CHECK(xout.find("AE_") == std::string::npos);
    CHECK(xout.find("successfully acquired and loaded") != std::string::npos);
    CHECK(xout.find("returned object") != std::string::npos);
    size_t evaluated = 0;
    for (size_t p = 0; (p = xout.find("returned object", p)) != std::string::npos; ++p) {
      ++evaluated;
    }
    CHECK(evaluated == 2 + config.virtio_mmio.size() + (config.sleep_control_port ? 1 : 0));
  }
}

TEST_CASE("iasl -d disassembles every table cleanly") {
  if (!HaveIasl()) {
    WARN("SKIPPED: iasl not found; install Debian's acpica-tools (tools/setup.sh does)");
    return;
  }
  DisassembleAll(RichConfig(), "rich");
  AcpiConfig minimal;  // 1 vCPU, COM1 only, no sleep register, no override
  DisassembleAll(minimal, "minimal");
}

}  // namespace
}  // namespace amalgam::vmm::acpi

namespace amalgam::vmm::acpi {
namespace {

TEST_CASE("The iasl check notices a broken table") {
  if (!HaveIasl()) {
    WARN("SKIPPED: iasl not found; install Debian's acpica-tools (tools/setup.sh does)");
    return;
  }
  FadtOptions o;
  Bytes fadt = BuildFadt(o);
  fadt[9] ^= 0x55;  // wrong checksum
  std::string dir = WorkDir();
  {
    std::ofstream out(dir + "/bad.dat", std::ios::binary);
    out.write(reinterpret_cast<const char*>(fadt.data()), fadt.size());
  }
  auto [rc, output] = Run(dir, "iasl -d bad.dat");
  std::string dsl = ReadFile(dir + "/bad.dsl");
  CHECK(!Problems(output + dsl).empty());
}

}  // namespace
}  // namespace amalgam::vmm::acpi
