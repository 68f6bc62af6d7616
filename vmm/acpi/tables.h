// The ACPI tables a hardware-reduced x86 microVM needs, as byte blobs with correct checksums:
// RSDP (revision 2), XSDT, FADT (6.5, HW_REDUCED_ACPI), MADT (a local APIC per vCPU, the IOAPIC)
// and a DSDT with COM1 and the virtio-mmio devices.
// Thread-safety: pure functions. Ownership: results own their bytes.
#ifndef AMALGAM_VMM_ACPI_TABLES_H_
#define AMALGAM_VMM_ACPI_TABLES_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "vmm/acpi/aml.h"

namespace amalgam::vmm::acpi {

inline constexpr char kOemId[] = "AMLGAM";         // 6 characters
inline constexpr char kOemTableId[] = "AMALGAMV";  // 8 characters
inline constexpr char kCreatorId[] = "AMLG";       // 4 characters
inline constexpr uint32_t kOemRevision = 1;
inline constexpr uint32_t kCreatorRevision = 1;

inline constexpr uint64_t kSdtHeaderSize = 36;
inline constexpr uint64_t kRsdpSize = 36;
inline constexpr uint64_t kFadtSize = 276;

// Byte sum (mod 256) of data; a valid table sums to 0.
uint8_t Checksum(absl::Span<const uint8_t> data);

// RSDP v2 pointing at the XSDT (RsdtAddress 0: no RSDT), both checksums set.
Bytes BuildRsdp(uint64_t xsdt_address);
// XSDT listing the given table addresses.
Bytes BuildXsdt(absl::Span<const uint64_t> table_addresses);

struct FadtOptions {
  uint64_t dsdt_address = 0;
  // When nonzero, SLEEP_CONTROL_REG/SLEEP_STATUS_REG are this I/O port (one byte each, the
  // status right after the control), so the guest can power off through the DSDT's \_S5.
  uint16_t sleep_control_port = 0;
};
// FADT revision 6 (minor 5) with HW_REDUCED_ACPI, no legacy devices/VGA/CMOS, X_DSDT set.
Bytes BuildFadt(const FadtOptions& options);

struct MadtOptions {
  uint32_t num_vcpus = 1;  // 1..254; APIC ids and processor UIDs are 0..num_vcpus-1
  uint64_t local_apic_address = 0xfee00000;
  uint8_t ioapic_id = 0;  // defaults to num_vcpus when left 0 (after the local APIC ids)
  uint32_t ioapic_address = 0xfec00000;
  // Interrupt source override ISA IRQ 0 -> GSI 2 (the PC wiring QEMU uses); leave false when
  // the PIT raises GSI 0 (KVM's default routing).
  bool irq0_to_gsi2 = false;
};
// MADT (revision 5): local APICs (enabled), the IOAPIC at GSI base 0, optional ISO, and a local
// APIC NMI entry (LINT1, all processors). INVALID_ARGUMENT for a vCPU count outside 1..254.
absl::StatusOr<Bytes> BuildMadt(const MadtOptions& options);

struct MmioDevice {
  uint64_t base = 0;  // must be below 4 GiB (Memory32Fixed)
  uint64_t size = 0;  // 1..2^32-1
  uint32_t gsi = 0;
  // Edge (default) suits a VMM that pulses the line (KVM irqfd without a resample fd); level
  // suits one that holds it until the driver writes InterruptACK (what QEMU microvm declares).
  bool level_triggered = false;
};
struct DsdtOptions {
  bool com1 = true;  // PNP0501 at 0x3F8-0x3FF, GSI 4
  // "LNRO0005" devices \_SB.V000, \_SB.V001, ... (with _CCA = 1: DMA is cache coherent)
  std::vector<MmioDevice> virtio_mmio;
  bool s5 = false;  // Name(\_S5, Package{5, 0}): the sleep type written for power-off
};
// DSDT (revision 2) whose AML is built by the aml:: encoder. INVALID_ARGUMENT for a device that
// does not fit Memory32Fixed or more than 4096 devices.
absl::StatusOr<Bytes> BuildDsdt(const DsdtOptions& options);

// Fills in a standard 36-byte header at the start of `table` (which already has room for it) and
// sets its checksum; exposed for tests.
void FinishSdt(Bytes& table, const char signature[4], uint8_t revision);

}  // namespace amalgam::vmm::acpi

#endif  // AMALGAM_VMM_ACPI_TABLES_H_
