// Puts a built ACPI table set (acpi.h) into guest RAM.
// Thread-safety: writes guest memory; call before any vCPU runs. Ownership: borrows both.
#ifndef AMALGAM_VMM_ACPI_WRITE_TABLES_H_
#define AMALGAM_VMM_ACPI_WRITE_TABLES_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "memory/guest_memory.h"
#include "vmm/acpi/acpi.h"

namespace amalgam::vmm::acpi {

// Writes every blob at its address. OUT_OF_RANGE (naming the table) when guest RAM does not back
// it; blobs before the failing one may already be written. Returns the RSDP address, for
// boot_params.acpi_rsdp_addr or hvm_start_info.rsdp_paddr.
absl::StatusOr<uint64_t> WriteAcpiTables(const AcpiTables& tables, memory::GuestMemory& memory);

}  // namespace amalgam::vmm::acpi

#endif  // AMALGAM_VMM_ACPI_WRITE_TABLES_H_
