// acpi_dump: writes the table set Build() makes as one flat image of guest memory starting at the
// RSDP address, to load into a guest by other means (QEMU's `-device loader,...,addr=0xe0000`,
// which is how acpi_qemu_boot_test checks the tables against the real Debian kernel), or to
// inspect with iasl (`--split DIR` writes one .dat per table).
//
// usage: acpi_dump OUT.bin [--vcpus N] [--virtio BASE:SIZE:GSI[:level]]... [--irq0-to-gsi2]
//                  [--sleep-port PORT] [--no-com1] [--split DIR]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "vmm/acpi/acpi.h"

namespace {

using amalgam::vmm::acpi::AcpiConfig;
using amalgam::vmm::acpi::AcpiTables;
using amalgam::vmm::acpi::MmioDevice;

int Usage(const char* why) {
  std::fprintf(stderr,
               "acpi_dump: %s\nusage: acpi_dump OUT.bin [--vcpus N] "
               "[--virtio BASE:SIZE:GSI[:level]]... [--irq0-to-gsi2] [--sleep-port PORT] "
               "[--no-com1] [--split DIR]\n",
               why);
  return 2;
}

bool ParseU64(absl::string_view text, uint64_t* out) {
  if (absl::StartsWith(text, "0x") || absl::StartsWith(text, "0X")) {
    return absl::SimpleHexAtoi(text.substr(2), out);
  }
  return absl::SimpleAtoi(text, out);
}

bool WriteFile(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return static_cast<bool>(out);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') return Usage("missing OUT.bin");
  std::string out_path = argv[1];
  std::string split_dir;
  AcpiConfig config;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](uint64_t* v) { return i + 1 < argc && ParseU64(argv[++i], v); };
    uint64_t v = 0;
    if (arg == "--vcpus" && value(&v)) {
      config.num_vcpus = static_cast<uint32_t>(v);
    } else if (arg == "--sleep-port" && value(&v) && v <= 0xfffe) {
      config.sleep_control_port = static_cast<uint16_t>(v);
    } else if (arg == "--irq0-to-gsi2") {
      config.irq0_to_gsi2 = true;
    } else if (arg == "--no-com1") {
      config.com1 = false;
    } else if (arg == "--split" && i + 1 < argc) {
      split_dir = argv[++i];
    } else if (arg == "--virtio" && i + 1 < argc) {
      std::vector<std::string> parts = absl::StrSplit(argv[++i], ':');
      MmioDevice d;
      uint64_t gsi = 0;
      if (parts.size() < 3 || parts.size() > 4 || !ParseU64(parts[0], &d.base) ||
          !ParseU64(parts[1], &d.size) || !ParseU64(parts[2], &gsi) || gsi > 0xffffffffu ||
          (parts.size() == 4 && parts[3] != "level" && parts[3] != "edge")) {
        return Usage("--virtio wants BASE:SIZE:GSI[:level|:edge]");
      }
      d.gsi = static_cast<uint32_t>(gsi);
      d.level_triggered = parts.size() == 4 && parts[3] == "level";
      config.virtio_mmio.push_back(d);
    } else {
      return Usage(("bad argument " + arg).c_str());
    }
  }
  absl::StatusOr<AcpiTables> tables = amalgam::vmm::acpi::Build(config);
  if (!tables.ok()) {
    std::fprintf(stderr, "acpi_dump: %s\n", std::string(tables.status().message()).c_str());
    return 1;
  }
  const auto& last = tables->blobs.back();
  std::vector<uint8_t> image(last.address + last.bytes.size() - tables->rsdp_address, 0);
  for (const auto& blob : tables->blobs) {
    std::memcpy(image.data() + (blob.address - tables->rsdp_address), blob.bytes.data(),
                blob.bytes.size());
    std::printf("%-8s 0x%06llx %5zu bytes\n", blob.signature.c_str(),
                static_cast<unsigned long long>(blob.address), blob.bytes.size());
    if (!split_dir.empty() && blob.signature != "RSD PTR ") {
      std::string name = absl::AsciiStrToLower(blob.signature);
      if (!WriteFile(split_dir + "/" + name + ".dat", blob.bytes)) {
        std::fprintf(stderr, "acpi_dump: cannot write %s/%s.dat\n", split_dir.c_str(),
                     name.c_str());
        return 1;
      }
    }
  }
  if (!WriteFile(out_path, image)) {
    std::fprintf(stderr, "acpi_dump: cannot write %s\n", out_path.c_str());
    return 1;
  }
  return 0;
}
