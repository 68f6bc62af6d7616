#include "vmm/machine/kernel_boot.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "vcpu/regs.h"
#include "vmm/acpi/acpi.h"
#include "vmm/acpi/write_tables.h"
#include "vmm/linux/bzimage.h"
#include "vmm/linux/pvh_initrd.h"
#include "vmm/loader/pvh_boot.h"
#include "vmm/loader/pvh_elf.h"

namespace amalgam::vmm::machine {
namespace {

// A read-only private mapping of a whole file (kernels and initrds can be hundreds of MiB; only
// the parts copied into guest RAM are ever touched). Owns the mapping.
class MappedFile {
 public:
  // `what` ("kernel", "initrd") and the path start every error; `hint` says what to pass.
  static absl::StatusOr<MappedFile> Open(const std::string& what, const std::string& path,
                                         const std::string& hint) {
    const std::string prefix = absl::StrCat(what, " ", path, ": ");
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == ENOENT) return absl::NotFoundError(prefix + "no such file; " + hint);
      return absl::NotFoundError(prefix + "cannot open: " + strerror(err));
    }
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      return absl::InvalidArgumentError(prefix + "not a regular file");
    }
    MappedFile f;
    f.size_ = static_cast<size_t>(st.st_size);
    if (f.size_ > 0) {
      void* map = ::mmap(nullptr, f.size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (map == MAP_FAILED) {
        int err = errno;
        ::close(fd);
        return absl::InvalidArgumentError(prefix + "cannot map: " + strerror(err));
      }
      f.map_ = map;
    }
    ::close(fd);
    return f;
  }
  MappedFile() = default;
  MappedFile(MappedFile&& o) noexcept : map_(std::exchange(o.map_, nullptr)), size_(o.size_) {}
  MappedFile& operator=(MappedFile&&) = delete;
  ~MappedFile() {
    if (map_ != nullptr) ::munmap(map_, size_);
  }
  absl::Span<const uint8_t> bytes() const {
    return absl::Span<const uint8_t>(static_cast<const uint8_t*>(map_), size_);
  }

 private:
  void* map_ = nullptr;
  size_t size_ = 0;
};

constexpr char kKernelHint[] =
    "pass the path of a vmlinux (PVH ELF), a bzImage or the test guest to --kernel";
constexpr char kInitrdHint[] = "pass the path of an initramfs (cpio archive) to --initrd";

absl::Status Prefixed(const absl::Status& s, const std::string& prefix) {
  return absl::Status(s.code(), absl::StrCat(prefix, s.message()));
}

// vmm/linux's messages name "kernel image" or "initrd"; say which file instead.
absl::Status FileError(const absl::Status& s, const BootInputs& in) {
  absl::string_view msg = s.message();
  if (absl::ConsumePrefix(&msg, "kernel image: ")) {
    return absl::Status(s.code(), absl::StrCat("kernel ", in.kernel_path, ": ", msg));
  }
  if (absl::StartsWith(msg, "initrd"))
    return Prefixed(s, absl::StrCat("initrd ", in.initrd_path, ": "));
  if (absl::StartsWith(msg, "kernel command line")) return Prefixed(s, "--cmdline: ");
  return Prefixed(s, absl::StrCat("kernel ", in.kernel_path, ": "));
}

absl::StatusOr<uint64_t> WriteAcpi(memory::GuestMemory& memory, const BootInputs& in) {
  acpi::AcpiConfig config;
  config.num_vcpus = in.vcpus;
  config.com1 = true;
  config.virtio_mmio = in.virtio_mmio;
  config.sleep_control_port = in.power_off_port;
  absl::StatusOr<acpi::AcpiTables> tables = acpi::Build(config);
  if (!tables.ok()) return Prefixed(tables.status(), "ACPI tables: ");
  absl::StatusOr<uint64_t> rsdp = acpi::WriteAcpiTables(*tables, memory);
  if (!rsdp.ok()) return Prefixed(rsdp.status(), "ACPI tables: ");
  return rsdp;
}

absl::StatusOr<BootPlan> LoadPvh(memory::GuestMemory& memory, const BootInputs& in,
                                 absl::Span<const uint8_t> kernel,
                                 absl::Span<const uint8_t> initrd) {
  const std::string prefix = absl::StrCat("kernel ", in.kernel_path, ": ");
  absl::StatusOr<loader::PvhImage> image = loader::ParsePvhElf(kernel);
  if (!image.ok()) return Prefixed(image.status(), prefix);
  if (absl::Status s = loader::LoadPvhSegments(*image, kernel, memory); !s.ok()) {
    return Prefixed(s, prefix);
  }
  if (absl::Status s = loader::CheckBootDataClear(*image); !s.ok()) return Prefixed(s, prefix);
  BootPlan plan;
  plan.protocol = BootProtocol::kPvh;
  plan.entry = image->entry;
  loader::PvhBootExtras extras;
  if (!in.initrd_path.empty()) {
    linux_boot::PvhInitrdOptions o;
    o.kernel_end = image->highest_paddr;
    absl::StatusOr<linux_boot::PvhInitrd> rd = linux_boot::LoadPvhInitrd(memory, initrd, o);
    if (!rd.ok()) return Prefixed(rd.status(), absl::StrCat("initrd ", in.initrd_path, ": "));
    extras.modlist_paddr = rd->modlist_paddr;
    extras.nr_modules = rd->nr_modules;
    plan.initrd_addr = rd->initrd_addr;
    plan.initrd_size = rd->initrd_size;
  }
  absl::StatusOr<uint64_t> rsdp = WriteAcpi(memory, in);
  if (!rsdp.ok()) return rsdp.status();
  plan.rsdp = *rsdp;
  extras.rsdp_paddr = *rsdp;
  absl::StatusOr<uint64_t> start_info = loader::WritePvhBootInfo(memory, in.cmdline, extras);
  if (!start_info.ok()) return start_info.status();
  plan.boot_data = *start_info;
  return plan;
}

absl::StatusOr<BootPlan> LoadLinux64(memory::GuestMemory& memory, const BootInputs& in,
                                     absl::Span<const uint8_t> kernel,
                                     absl::Span<const uint8_t> initrd) {
  absl::StatusOr<uint64_t> rsdp = WriteAcpi(memory, in);
  if (!rsdp.ok()) return rsdp.status();
  linux_boot::BzImageOptions o;
  o.cmdline = in.cmdline;
  o.initrd = initrd;
  o.rsdp_addr = *rsdp;
  absl::StatusOr<linux_boot::BzImageBoot> boot = linux_boot::LoadBzImage(memory, kernel, o);
  if (!boot.ok()) return FileError(boot.status(), in);
  // The entry page tables map only the low 4 GiB (see kernel_boot.h).
  if (boot->kernel_end > kLinuxIdentityMapBytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "kernel %s: the kernel's window [0x%x, 0x%x) (pref_address + init_size) ends above 4 GiB; "
        "amalgam enters a bzImage with the low 4 GiB mapped: use a kernel loaded lower",
        in.kernel_path, boot->kernel_load, boot->kernel_end));
  }
  BootPlan plan;
  plan.protocol = BootProtocol::kLinux64;
  plan.entry = boot->entry;
  plan.boot_data = boot->boot_params;
  plan.rsdp = *rsdp;
  plan.initrd_addr = boot->initrd_addr;
  plan.initrd_size = boot->initrd_size;
  return plan;
}

// GDT for the 64-bit boot protocol: Linux's startup_64 expects __BOOT_CS = 0x10 and
// __BOOT_DS = 0x18 (flat 4 GiB, granularity 4 KiB, accessed).
constexpr uint64_t kLinuxGdt[] = {
    0,                      // 0x00 null
    0,                      // 0x08 unused
    0x00af9b000000ffffull,  // 0x10 64-bit code
    0x00cf93000000ffffull,  // 0x18 data
};

absl::Status SetupLinux64(vcpu::Vcpu& vcpu, memory::GuestMemory& memory, const BootPlan& plan) {
  auto write = [&memory](uint64_t gpa, absl::Span<const uint8_t> data) {
    return memory.Write(memory::GuestAddress(gpa), data);
  };
  // The vcpu helper writes the identity page tables and enters long mode; its GDT selectors
  // (0x08/0x10) differ from Linux's, so the GDT and segments are replaced below.
  vcpu::LongModeConfig lm;
  lm.page_tables_gpa = kLinuxPageTablesAddr;
  lm.identity_map_bytes = kLinuxIdentityMapBytes;
  lm.gdt_gpa = kLinuxGdtAddr;
  lm.entry = plan.entry;
  lm.stack = kLinuxStackTop;
  if (absl::Status s = vcpu::SetupLongMode(vcpu, lm, write); !s.ok()) return s;
  if (absl::Status s = write(
          kLinuxGdtAddr,
          absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(kLinuxGdt), sizeof(kLinuxGdt)));
      !s.ok()) {
    return s;
  }
  absl::StatusOr<kvm_sregs> sregs = vcpu.GetSregs();
  if (!sregs.ok()) return sregs.status();
  sregs->gdt.base = kLinuxGdtAddr;
  sregs->gdt.limit = sizeof(kLinuxGdt) - 1;
  sregs->cs = vcpu::FlatSegment(0x10, /*code=*/true, /*long_mode=*/true);
  kvm_segment data = vcpu::FlatSegment(0x18, /*code=*/false, /*long_mode=*/false);
  sregs->ds = data;
  sregs->es = data;
  sregs->fs = data;
  sregs->gs = data;
  sregs->ss = data;
  if (absl::Status s = vcpu.SetSregs(*sregs); !s.ok()) return s;
  absl::StatusOr<kvm_regs> regs = vcpu.GetRegs();
  if (!regs.ok()) return regs.status();
  regs->rflags = 0x2;  // IF clear: interrupts off
  regs->rip = plan.entry;
  regs->rsp = kLinuxStackTop;
  regs->rsi = plan.boot_data;
  return vcpu.SetRegs(*regs);
}

}  // namespace

bool LooksLikeBzImage(absl::Span<const uint8_t> image) {
  return image.size() >= 0x206 && std::memcmp(image.data() + 0x202, "HdrS", 4) == 0;
}

absl::StatusOr<BootPlan> LoadBoot(memory::GuestMemory& memory, const BootInputs& in) {
  absl::StatusOr<MappedFile> kernel = MappedFile::Open("kernel", in.kernel_path, kKernelHint);
  if (!kernel.ok()) return kernel.status();
  std::optional<MappedFile> initrd;
  if (!in.initrd_path.empty()) {
    absl::StatusOr<MappedFile> rd = MappedFile::Open("initrd", in.initrd_path, kInitrdHint);
    if (!rd.ok()) return rd.status();
    if (rd->bytes().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("initrd ", in.initrd_path, ": empty file; ", kInitrdHint));
    }
    initrd.emplace(std::move(*rd));
  }
  absl::Span<const uint8_t> initrd_bytes;
  if (initrd.has_value()) initrd_bytes = initrd->bytes();
  if (LooksLikeBzImage(kernel->bytes())) {
    return LoadLinux64(memory, in, kernel->bytes(), initrd_bytes);
  }
  return LoadPvh(memory, in, kernel->bytes(), initrd_bytes);
}

absl::Status SetupBootVcpu(vcpu::Vcpu& vcpu, memory::GuestMemory& memory, const BootPlan& plan) {
  if (plan.protocol == BootProtocol::kLinux64) return SetupLinux64(vcpu, memory, plan);
  return vcpu::SetupPvhEntry(vcpu, plan.entry, plan.boot_data);
}

}  // namespace amalgam::vmm::machine
