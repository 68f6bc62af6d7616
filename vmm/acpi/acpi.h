// The whole ACPI table set for one VM: laid out at guest-physical addresses and written into
// guest RAM. The RSDP sits in the BIOS area (0xE0000 by default, where a guest without a boot
// protocol pointer scans for it) and the other tables follow it, 8-byte aligned.
// Thread-safety: pure functions. Ownership: AcpiTables owns its blobs.
// (write_tables.h puts them into guest RAM.)
#ifndef AMALGAM_VMM_ACPI_ACPI_H_
#define AMALGAM_VMM_ACPI_ACPI_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "vmm/acpi/tables.h"

namespace amalgam::vmm::acpi {

inline constexpr uint64_t kDefaultRsdpAddress = 0xe0000;
// The BIOS area ends at 1 MiB; the tables must stay below it (the guest reserves [0xE0000, 1M)).
inline constexpr uint64_t kBiosAreaEnd = 0x100000;

struct AcpiConfig {
  uint32_t num_vcpus = 1;
  bool com1 = true;
  std::vector<MmioDevice> virtio_mmio;
  bool irq0_to_gsi2 = false;
  // Nonzero: the FADT's sleep control/status registers are I/O ports `port` and `port + 1`, and
  // the DSDT has \_S5 = {5, 0}. Linux powers off by writing 0x34 (SLP_TYP 5 << 2 | SLP_EN 0x20)
  // to the control port; the VMM's device there should stop the VM. 0: no ACPI power-off.
  uint16_t sleep_control_port = 0;
  uint64_t rsdp_address = kDefaultRsdpAddress;  // 16-byte aligned
  uint64_t tables_end = kBiosAreaEnd;           // the layout must end at or below this
};

struct AcpiBlob {
  std::string signature;  // "RSD PTR ", "XSDT", "FACP", "APIC", "DSDT"
  uint64_t address = 0;
  Bytes bytes;
};

struct AcpiTables {
  uint64_t rsdp_address = 0;    // for boot_params.acpi_rsdp_addr / hvm_start_info.rsdp_paddr
  std::vector<AcpiBlob> blobs;  // RSDP first, in ascending address order
};

// INVALID_ARGUMENT for a bad config (vCPU count, device range, misaligned RSDP) or when the tables
// do not fit below tables_end.
absl::StatusOr<AcpiTables> Build(const AcpiConfig& config);

}  // namespace amalgam::vmm::acpi

#endif  // AMALGAM_VMM_ACPI_ACPI_H_
