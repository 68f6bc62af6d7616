// Register set-up helpers for boot entry points: PVH (32-bit protected mode, paging off) and
// 64-bit long mode with identity page tables (for test guests). Thread-safety: stateless; the
// Vcpu must not be running.
#ifndef AMALGAM_VCPU_REGS_H_
#define AMALGAM_VCPU_REGS_H_

#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "vcpu/kvm_uapi.h"
#include "vcpu/vcpu.h"

namespace amalgam::vcpu {

// Writes bytes into guest-physical memory (the caller's memory accessor).
using GuestPhysWriter = std::function<absl::Status(uint64_t gpa, absl::Span<const uint8_t> data)>;

// A flat 4 GiB segment for the sregs segment cache. `code` selects an execute/read code segment.
kvm_segment FlatSegment(uint16_t selector, bool code, bool long_mode);

// PVH boot ABI: 32-bit protected mode, CS/DS/ES/SS flat (selectors 0x10 code / 0x18 data, as
// in the PVH spec's example GDT), CR0.PE=1, paging off, EFLAGS=0x2, EBX=start_info_gpa,
// RIP=entry. No GDT in guest memory is needed until the guest reloads a segment.
absl::Status SetupPvhEntry(Vcpu& vcpu, uint64_t entry, uint64_t start_info_gpa);

struct LongModeConfig {
  uint64_t page_tables_gpa = 0x9000;         // 4 KiB aligned; needs 2 + ceil(identity/1 GiB) pages
  uint64_t identity_map_bytes = 1ull << 30;  // identity-mapped with 2 MiB pages from GPA 0
  uint64_t gdt_gpa = 0x8000;  // 4 entries (null, code64 0x08, data 0x10, code32 0x18)
  uint64_t entry = 0;         // RIP
  uint64_t stack = 0;         // RSP
};

// Number of bytes the page tables for `identity_map_bytes` occupy.
uint64_t LongModePageTableBytes(uint64_t identity_map_bytes);

// Writes the GDT and identity page tables through `write`, then sets CR0 (PE|PG|ET|NE|WP),
// CR3, CR4.PAE, EFER (LME|LMA|SCE off), 64-bit CS, flat data segments, RIP, RSP, RFLAGS=0x2.
absl::Status SetupLongMode(Vcpu& vcpu, const LongModeConfig& config, const GuestPhysWriter& write);

}  // namespace amalgam::vcpu

#endif  // AMALGAM_VCPU_REGS_H_
