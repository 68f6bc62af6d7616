#include "vmm/acpi/write_tables.h"

#include "absl/strings/str_format.h"

namespace amalgam::vmm::acpi {

absl::StatusOr<uint64_t> WriteAcpiTables(const AcpiTables& tables, memory::GuestMemory& memory) {
  for (const AcpiBlob& blob : tables.blobs) {
    absl::Status s = memory.Write(memory::GuestAddress(blob.address), blob.bytes);
    if (!s.ok()) {
      return absl::OutOfRangeError(absl::StrFormat(
          "ACPI: cannot write the %s table at 0x%x (%d bytes): %s; guest RAM must cover the "
          "BIOS area",
          blob.signature, blob.address, blob.bytes.size(), s.message()));
    }
  }
  return tables.rsdp_address;
}

}  // namespace amalgam::vmm::acpi
