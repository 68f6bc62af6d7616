#include "vmm/acpi/acpi.h"

#include "absl/strings/str_format.h"

namespace amalgam::vmm::acpi {
namespace {

uint64_t AlignUp(uint64_t value, uint64_t align) { return (value + align - 1) & ~(align - 1); }

}  // namespace

absl::StatusOr<AcpiTables> Build(const AcpiConfig& config) {
  if (config.rsdp_address % 16 != 0 || config.rsdp_address > config.tables_end) {
    return absl::InvalidArgumentError(
        absl::StrFormat("ACPI: rsdp_address 0x%x must be 16-byte aligned and below tables_end 0x%x",
                        config.rsdp_address, config.tables_end));
  }
  DsdtOptions dsdt_options;
  dsdt_options.com1 = config.com1;
  dsdt_options.virtio_mmio = config.virtio_mmio;
  dsdt_options.s5 = config.sleep_control_port != 0;
  absl::StatusOr<Bytes> dsdt = BuildDsdt(dsdt_options);
  if (!dsdt.ok()) return dsdt.status();
  MadtOptions madt_options;
  madt_options.num_vcpus = config.num_vcpus;
  madt_options.irq0_to_gsi2 = config.irq0_to_gsi2;
  absl::StatusOr<Bytes> madt = BuildMadt(madt_options);
  if (!madt.ok()) return madt.status();

  // Layout: RSDP, DSDT, FADT, MADT, XSDT (the XSDT last because it needs the others' addresses).
  uint64_t dsdt_addr = AlignUp(config.rsdp_address + kRsdpSize, 8);
  uint64_t fadt_addr = AlignUp(dsdt_addr + dsdt->size(), 8);
  uint64_t madt_addr = AlignUp(fadt_addr + kFadtSize, 8);
  uint64_t xsdt_addr = AlignUp(madt_addr + madt->size(), 8);
  Bytes xsdt = BuildXsdt({fadt_addr, madt_addr});
  uint64_t end = xsdt_addr + xsdt.size();
  if (end > config.tables_end) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "ACPI: the tables need [0x%x, 0x%x) but must end by tables_end 0x%x; use fewer "
        "devices or move rsdp_address lower",
        config.rsdp_address, end, config.tables_end));
  }
  AcpiTables tables;
  tables.rsdp_address = config.rsdp_address;
  tables.blobs.push_back({"RSD PTR ", config.rsdp_address, BuildRsdp(xsdt_addr)});
  tables.blobs.push_back({"DSDT", dsdt_addr, std::move(*dsdt)});
  FadtOptions fadt_options;
  fadt_options.dsdt_address = dsdt_addr;
  fadt_options.sleep_control_port = config.sleep_control_port;
  tables.blobs.push_back({"FACP", fadt_addr, BuildFadt(fadt_options)});
  tables.blobs.push_back({"APIC", madt_addr, std::move(*madt)});
  tables.blobs.push_back({"XSDT", xsdt_addr, std::move(xsdt)});
  return tables;
}

}  // namespace amalgam::vmm::acpi
