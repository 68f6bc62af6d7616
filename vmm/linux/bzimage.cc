#include "vmm/linux/bzimage.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "vmm/linux/boot_params.h"
#include "vmm/linux/initrd.h"

namespace amalgam::vmm::linux_boot {
namespace {

using memory::GuestAddress;

bool InRam(absl::Span<const E820Entry> ram, uint64_t addr, uint64_t size) {
  for (const E820Entry& e : ram) {
    if (addr >= e.addr && size <= e.size && addr - e.addr <= e.size - size) return true;
  }
  return false;
}

absl::Status WriteOrExplain(memory::GuestMemory& memory, uint64_t addr,
                            absl::Span<const uint8_t> data, const char* what) {
  absl::Status s = memory.Write(GuestAddress(addr), data);
  if (s.ok()) return s;
  return absl::InternalError(absl::StrFormat("bzImage: writing the %s at 0x%x (%d bytes): %s", what,
                                             addr, data.size(), s.message()));
}

}  // namespace

absl::StatusOr<BzImageBoot> LoadBzImage(memory::GuestMemory& memory,
                                        absl::Span<const uint8_t> image,
                                        const BzImageOptions& options) {
  absl::StatusOr<SetupHeader> header = ParseSetupHeader(image);
  if (!header.ok()) return header.status();
  BzImageBoot boot;
  boot.header = *header;

  if (options.cmdline.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("kernel command line contains a NUL byte");
  }
  uint64_t cmdline_max =
      std::min<uint64_t>(header->cmdline_size, kCmdlineAreaEnd - kCmdlineAddr - 1);
  if (options.cmdline.size() > cmdline_max) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "kernel command line is %d bytes; this kernel accepts at most %d (setup header "
        "cmdline_size): shorten it",
        options.cmdline.size(), cmdline_max));
  }

  absl::StatusOr<std::vector<E820Entry>> e820 = BuildE820(memory, options.carve_outs);
  if (!e820.ok()) return e820.status();
  std::vector<E820Entry> ram;
  for (const E820Entry& e : *e820) {
    if (e.type == E820Type::kRam) ram.push_back(e);
  }

  boot.kernel_load = header->pref_address;
  boot.kernel_end = boot.kernel_load + header->init_size;
  if (!InRam(ram, boot.kernel_load, header->init_size)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "guest RAM must cover [0x%x, 0x%x) for this kernel (pref_address + init_size); give the "
        "guest at least %d MiB",
        boot.kernel_load, boot.kernel_end, (boot.kernel_end + (1 << 20) - 1) >> 20));
  }
  if (!InRam(ram, kBootParamsAddr, kBootParamsSize) ||
      !InRam(ram, kCmdlineAddr, options.cmdline.size() + 1)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "guest RAM must cover the boot data at 0x%x (boot_params) and 0x%x (command line)",
        kBootParamsAddr, kCmdlineAddr));
  }

  if (!options.initrd.empty()) {
    InitrdLimits limits;
    limits.min_addr = (boot.kernel_end + memory::kPageSize - 1) & ~(memory::kPageSize - 1);
    limits.max_end = uint64_t{header->initrd_addr_max} + 1;
    absl::StatusOr<uint64_t> addr = PlaceInitrd(ram, options.initrd.size(), limits);
    if (!addr.ok()) return addr.status();
    boot.initrd_addr = *addr;
    boot.initrd_size = options.initrd.size();
  }

  BootParamsFields fields;
  fields.kernel_load = boot.kernel_load;
  fields.cmdline_addr = kCmdlineAddr;
  fields.initrd_addr = boot.initrd_addr;
  fields.initrd_size = boot.initrd_size;
  fields.rsdp_addr = options.rsdp_addr;
  fields.e820 = *e820;
  absl::StatusOr<std::vector<uint8_t>> bp = BuildBootParams(image, *header, fields);
  if (!bp.ok()) return bp.status();

  absl::Status s =
      WriteOrExplain(memory, boot.kernel_load, image.subspan(header->setup_bytes), "kernel");
  if (s.ok() && boot.initrd_size > 0) {
    s = WriteOrExplain(memory, boot.initrd_addr, options.initrd, "initrd");
  }
  if (s.ok()) {
    std::vector<uint8_t> cmdline(options.cmdline.begin(), options.cmdline.end());
    cmdline.push_back(0);
    s = WriteOrExplain(memory, kCmdlineAddr, cmdline, "command line");
  }
  if (s.ok()) s = WriteOrExplain(memory, kBootParamsAddr, *bp, "boot_params");
  if (!s.ok()) return s;

  boot.entry = boot.kernel_load + kEntry64Offset;
  boot.boot_params = kBootParamsAddr;
  boot.cmdline_addr = kCmdlineAddr;
  boot.e820 = std::move(*e820);
  return boot;
}

}  // namespace amalgam::vmm::linux_boot
