#include "vmm/acpi/tables.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace amalgam::vmm::acpi {
namespace {

void PutLe(Bytes& out, size_t offset, uint64_t value, int width) {
  for (int i = 0; i < width; ++i) out[offset + i] = static_cast<uint8_t>(value >> (8 * i));
}

void AppendLe(Bytes& out, uint64_t value, int width) {
  for (int i = 0; i < width; ++i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

void PutChars(Bytes& out, size_t offset, const char* text, size_t n) {
  std::memcpy(out.data() + offset, text, n);
}

// Generic Address Structure (12 bytes): space id, bit width, bit offset, access size, address.
void PutGas(Bytes& out, size_t offset, uint8_t space, uint8_t bit_width, uint8_t access_size,
            uint64_t address) {
  out[offset] = space;
  out[offset + 1] = bit_width;
  out[offset + 2] = 0;
  out[offset + 3] = access_size;
  PutLe(out, offset + 4, address, 8);
}

constexpr uint8_t kGasSystemIo = 1;
constexpr uint8_t kGasAccessByte = 1;

// FADT offsets (ACPI 6.5 table 5.9).
constexpr size_t kFadtDsdt = 40;
constexpr size_t kFadtIapcBootArch = 109;
constexpr size_t kFadtFlags = 112;
constexpr size_t kFadtMinorVersion = 131;
constexpr size_t kFadtXDsdt = 140;
constexpr size_t kFadtSleepControl = 244;
constexpr size_t kFadtSleepStatus = 256;
constexpr size_t kFadtHypervisorId = 268;

constexpr uint16_t kIapcVgaNotPresent = 1 << 2;
constexpr uint16_t kIapcCmosRtcNotPresent = 1 << 5;
constexpr uint32_t kFadtHwReducedAcpi = 1 << 20;
constexpr uint32_t kFadtPwrButton = 1 << 4;  // set: no fixed-feature power button
constexpr uint32_t kFadtSlpButton = 1 << 5;  // set: no fixed-feature sleep button

// MADT structure types.
constexpr uint8_t kMadtLocalApic = 0;
constexpr uint8_t kMadtIoApic = 1;
constexpr uint8_t kMadtInterruptOverride = 2;
constexpr uint8_t kMadtLocalApicNmi = 4;

constexpr uint32_t kCom1Gsi = 4;

}  // namespace

uint8_t Checksum(absl::Span<const uint8_t> data) {
  uint8_t sum = 0;
  for (uint8_t b : data) sum += b;
  return sum;
}

void FinishSdt(Bytes& table, const char signature[4], uint8_t revision) {
  PutChars(table, 0, signature, 4);
  PutLe(table, 4, table.size(), 4);
  table[8] = revision;
  table[9] = 0;
  PutChars(table, 10, kOemId, 6);
  PutChars(table, 16, kOemTableId, 8);
  PutLe(table, 24, kOemRevision, 4);
  PutChars(table, 28, kCreatorId, 4);
  PutLe(table, 32, kCreatorRevision, 4);
  table[9] = static_cast<uint8_t>(-Checksum(table));
}

Bytes BuildRsdp(uint64_t xsdt_address) {
  Bytes rsdp(kRsdpSize, 0);
  PutChars(rsdp, 0, "RSD PTR ", 8);
  PutChars(rsdp, 9, kOemId, 6);
  rsdp[15] = 2;           // revision: ACPI 2.0+ (XSDT)
  PutLe(rsdp, 16, 0, 4);  // RsdtAddress: none
  PutLe(rsdp, 20, kRsdpSize, 4);
  PutLe(rsdp, 24, xsdt_address, 8);
  // The 1.0 checksum covers the first 20 bytes, the extended one all 36 (with the first set).
  rsdp[8] = static_cast<uint8_t>(-Checksum(absl::MakeConstSpan(rsdp).subspan(0, 20)));
  rsdp[32] = static_cast<uint8_t>(-Checksum(rsdp));
  return rsdp;
}

Bytes BuildXsdt(absl::Span<const uint64_t> table_addresses) {
  Bytes xsdt(kSdtHeaderSize, 0);
  for (uint64_t addr : table_addresses) AppendLe(xsdt, addr, 8);
  FinishSdt(xsdt, "XSDT", 1);
  return xsdt;
}

Bytes BuildFadt(const FadtOptions& options) {
  Bytes fadt(kFadtSize, 0);
  // DSDT (32-bit) stays 0: X_DSDT supersedes it and the two must not disagree.
  PutLe(fadt, kFadtDsdt, 0, 4);
  PutLe(fadt, kFadtIapcBootArch, kIapcVgaNotPresent | kIapcCmosRtcNotPresent, 2);
  PutLe(fadt, kFadtFlags, kFadtHwReducedAcpi | kFadtPwrButton | kFadtSlpButton, 4);
  fadt[kFadtMinorVersion] = 5;
  PutLe(fadt, kFadtXDsdt, options.dsdt_address, 8);
  if (options.sleep_control_port != 0) {
    PutGas(fadt, kFadtSleepControl, kGasSystemIo, 8, kGasAccessByte, options.sleep_control_port);
    PutGas(fadt, kFadtSleepStatus, kGasSystemIo, 8, kGasAccessByte,
           options.sleep_control_port + 1u);
  }
  PutChars(fadt, kFadtHypervisorId, "AMALGAM\0", 8);
  FinishSdt(fadt, "FACP", 6);
  return fadt;
}

absl::StatusOr<Bytes> BuildMadt(const MadtOptions& options) {
  if (options.num_vcpus < 1 || options.num_vcpus > 254) {
    return absl::InvalidArgumentError(
        absl::StrCat("MADT: num_vcpus is ", options.num_vcpus,
                     "; xAPIC entries allow 1..254 (APIC id 255 is the broadcast id)"));
  }
  if (options.local_apic_address > 0xffffffffu) {
    return absl::InvalidArgumentError("MADT: local_apic_address must be below 4 GiB");
  }
  uint8_t ioapic_id =
      options.ioapic_id != 0 ? options.ioapic_id : static_cast<uint8_t>(options.num_vcpus);
  Bytes madt(kSdtHeaderSize, 0);
  AppendLe(madt, options.local_apic_address, 4);
  AppendLe(madt, 0, 4);  // flags: no PCAT_COMPAT (the 8259s are not part of the platform)
  for (uint32_t i = 0; i < options.num_vcpus; ++i) {
    madt.insert(madt.end(), {kMadtLocalApic, 8, static_cast<uint8_t>(i), static_cast<uint8_t>(i)});
    AppendLe(madt, 1, 4);  // enabled
  }
  madt.insert(madt.end(), {kMadtIoApic, 12, ioapic_id, 0});
  AppendLe(madt, options.ioapic_address, 4);
  AppendLe(madt, 0, 4);  // GSI base
  if (options.irq0_to_gsi2) {
    madt.insert(madt.end(), {kMadtInterruptOverride, 10, 0 /* ISA */, 0 /* IRQ 0 */});
    AppendLe(madt, 2, 4);  // GSI 2
    AppendLe(madt, 0, 2);  // flags: conforms to the bus (edge, active high)
  }
  // LINT1 of every local APIC is the NMI input (flags 0: conforms to the bus).
  madt.insert(madt.end(), {kMadtLocalApicNmi, 6, 0xff, 0, 0, 1});
  FinishSdt(madt, "APIC", 5);
  return madt;
}

absl::StatusOr<Bytes> BuildDsdt(const DsdtOptions& options) {
  if (options.virtio_mmio.size() > 4096) {
    return absl::InvalidArgumentError(absl::StrCat("DSDT: ", options.virtio_mmio.size(),
                                                   " virtio-mmio devices; the limit is 4096"));
  }
  std::vector<Term> sb;
  auto sta_present = aml::Method("_STA", 0, false, {aml::Return(aml::Integer(0x0f))});
  if (options.com1) {
    aml::InterruptFlags edge_high;
    sb.push_back(aml::Device(
        "COM1",
        {aml::Name("_HID", aml::EisaId("PNP0501")), aml::Name("_UID", aml::Integer(1)),
         aml::Name("_DDN", aml::String("COM1")), sta_present,
         aml::Name("_CRS", aml::ResourceTemplate({aml::Io(0x3f8, 0x3f8, 0x00, 0x08),
                                                  aml::Interrupt(edge_high, {kCom1Gsi})}))}));
  }
  for (size_t i = 0; i < options.virtio_mmio.size(); ++i) {
    const MmioDevice& dev = options.virtio_mmio[i];
    if (dev.size == 0 || dev.size > 0xffffffffu || dev.base > 0xffffffffu - (dev.size - 1)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "DSDT: virtio-mmio device %d at 0x%x size 0x%x must be non-empty and lie below 4 GiB", i,
          dev.base, dev.size));
    }
    aml::InterruptFlags irq_flags;
    irq_flags.edge = !dev.level_triggered;
    sb.push_back(aml::Device(
        absl::StrFormat("V%03X", i),
        {aml::Name("_HID", aml::String("LNRO0005")), aml::Name("_UID", aml::Integer(i)),
         aml::Name("_CCA", aml::Integer(1)), sta_present,
         aml::Name("_CRS",
                   aml::ResourceTemplate({aml::Memory32Fixed(true, static_cast<uint32_t>(dev.base),
                                                             static_cast<uint32_t>(dev.size)),
                                          aml::Interrupt(irq_flags, {dev.gsi})}))}));
  }
  std::vector<Term> top{aml::Scope("\\_SB", sb)};
  if (options.s5) {
    top.push_back(aml::Name("\\_S5", aml::Package({aml::Integer(5), aml::Integer(0)})));
  }
  Bytes dsdt(kSdtHeaderSize, 0);
  for (const Term& t : top) {
    if (!t.ok()) return t.status();
    dsdt.insert(dsdt.end(), t.bytes().begin(), t.bytes().end());
  }
  FinishSdt(dsdt, "DSDT", 2);
  return dsdt;
}

}  // namespace amalgam::vmm::acpi
