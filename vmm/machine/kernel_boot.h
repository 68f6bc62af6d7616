// Loading what the guest boots: the kernel (a PVH ELF such as vmlinux or the test guest, or a
// bzImage, told apart by content), an optional initrd, the ACPI tables and the boot protocol's
// data, then the boot vCPU's registers for that protocol. Low-memory layout: vmm/README.md.
// Thread-safety: functions over guest memory and a vCPU that is not running.
#ifndef AMALGAM_VMM_MACHINE_KERNEL_BOOT_H_
#define AMALGAM_VMM_MACHINE_KERNEL_BOOT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "memory/guest_memory.h"
#include "vcpu/vcpu.h"
#include "vmm/acpi/tables.h"

namespace amalgam::vmm::machine {

// bzImage 64-bit entry: a GDT with flat code at __BOOT_CS = 0x10 and data at __BOOT_DS = 0x18,
// and identity page tables for the low 4 GiB (2 MiB pages: PML4, PDPT, 4 PDs = 6 pages). Both sit
// in [0x1000, 0xF000), clear of the PVH start info (0x6000) only because a boot uses one protocol;
// see vmm/README.md for the whole map.
inline constexpr uint64_t kLinuxGdtAddr = 0x1000;
inline constexpr uint64_t kLinuxPageTablesAddr = 0x9000;
inline constexpr uint64_t kLinuxIdentityMapBytes = 4ull << 30;
// The protocol sets no stack (the kernel loads its own at once); a valid RSP in the free page
// [0x8000, 0x9000) keeps an early push from faulting.
inline constexpr uint64_t kLinuxStackTop = 0x9000;

// True when `image` carries the Linux setup header magic "HdrS" at 0x202 (a bzImage).
bool LooksLikeBzImage(absl::Span<const uint8_t> image);

struct BootInputs {
  std::string kernel_path;
  std::string initrd_path;  // empty: none
  std::string cmdline;
  uint32_t vcpus = 1;
  std::vector<acpi::MmioDevice> virtio_mmio;  // listed in the DSDT
  uint16_t power_off_port = 0;                // FADT sleep control port; 0: none
};

enum class BootProtocol { kPvh, kLinux64 };

struct BootPlan {
  BootProtocol protocol = BootProtocol::kPvh;
  uint64_t entry = 0;        // PVH: 32-bit entry; Linux64: load address + 0x200
  uint64_t boot_data = 0;    // PVH: hvm_start_info (EBX); Linux64: boot_params (RSI)
  uint64_t rsdp = 0;         // where the ACPI RSDP was written
  uint64_t initrd_addr = 0;  // 0: no initrd
  uint64_t initrd_size = 0;
};

// Loads kernel, initrd, ACPI tables and boot data into `memory`. Errors are one line starting with
// "kernel PATH: " or "initrd PATH: " for file problems (missing, garbage, truncated, old boot
// protocol, does not fit in RAM), or naming the flag otherwise (--cmdline too long, --vcpus
// beyond what the MADT can list).
absl::StatusOr<BootPlan> LoadBoot(memory::GuestMemory& memory, const BootInputs& inputs);

// Sets the boot vCPU's registers for the plan: PVH (32-bit flat, EBX = start info) or the Linux
// 64-bit protocol (writes the GDT and page tables above into guest memory; long mode, CS 0x10,
// DS/ES/SS 0x18, RSI = boot_params, interrupts off).
absl::Status SetupBootVcpu(vcpu::Vcpu& vcpu, memory::GuestMemory& memory, const BootPlan& plan);

}  // namespace amalgam::vmm::machine

#endif  // AMALGAM_VMM_MACHINE_KERNEL_BOOT_H_
