#include "vcpu/regs.h"

#include <cstring>
#include <vector>

#include "absl/strings/str_format.h"

namespace amalgam::vcpu {
namespace {

constexpr uint64_t kCr0Pe = 1ull << 0;
constexpr uint64_t kCr0Mp = 1ull << 1;
constexpr uint64_t kCr0Et = 1ull << 4;
constexpr uint64_t kCr0Ne = 1ull << 5;
constexpr uint64_t kCr0Wp = 1ull << 16;
constexpr uint64_t kCr0Am = 1ull << 18;
constexpr uint64_t kCr0Pg = 1ull << 31;
constexpr uint64_t kCr4Pae = 1ull << 5;
constexpr uint64_t kEferLme = 1ull << 8;
constexpr uint64_t kEferLma = 1ull << 10;
constexpr uint64_t kPteRw = 0x3;      // present | writable
constexpr uint64_t kPdeLarge = 0x83;  // present | writable | 2 MiB page
constexpr uint64_t kGiB = 1ull << 30;
constexpr uint64_t kTwoMiB = 2ull << 20;
constexpr uint64_t kPageBytes = 4096;

// GDT descriptors matching FlatSegment(): flat 4 GiB, granularity 4 KiB, accessed.
constexpr uint64_t kGdt[] = {
    0,                      // null
    0x00af9b000000ffffull,  // 0x08: 64-bit code
    0x00cf93000000ffffull,  // 0x10: data
    0x00cf9b000000ffffull,  // 0x18: 32-bit code
};

void SetFlatDataSegments(kvm_sregs& sregs, uint16_t selector) {
  kvm_segment data = FlatSegment(selector, /*code=*/false, /*long_mode=*/false);
  sregs.ds = data;
  sregs.es = data;
  sregs.fs = data;
  sregs.gs = data;
  sregs.ss = data;
}

}  // namespace

kvm_segment FlatSegment(uint16_t selector, bool code, bool long_mode) {
  kvm_segment seg{};
  seg.base = 0;
  seg.limit = 0xffffffff;
  seg.selector = selector;
  seg.type = code ? 0xb : 0x3;  // execute/read accessed : read/write accessed
  seg.present = 1;
  seg.dpl = 0;
  seg.db = (code && long_mode) ? 0 : 1;  // L=1 requires D=0
  seg.s = 1;
  seg.l = (code && long_mode) ? 1 : 0;
  seg.g = 1;
  return seg;
}

absl::Status SetupPvhEntry(Vcpu& vcpu, uint64_t entry, uint64_t start_info_gpa) {
  if (entry > 0xffffffffull || start_info_gpa > 0xffffffffull) {
    return absl::InvalidArgumentError(
        absl::StrFormat("PVH entry %#x and start_info %#x must be below 4 GiB (32-bit entry)",
                        entry, start_info_gpa));
  }
  absl::StatusOr<kvm_sregs> sregs = vcpu.GetSregs();
  if (!sregs.ok()) return sregs.status();
  sregs->cs = FlatSegment(0x10, /*code=*/true, /*long_mode=*/false);
  SetFlatDataSegments(*sregs, 0x18);
  sregs->cr0 = kCr0Pe | kCr0Et;
  sregs->cr3 = 0;
  sregs->cr4 = 0;
  sregs->efer = 0;
  if (absl::Status s = vcpu.SetSregs(*sregs); !s.ok()) return s;
  kvm_regs regs{};
  regs.rflags = 0x2;
  regs.rip = entry;
  regs.rbx = start_info_gpa;
  return vcpu.SetRegs(regs);
}

uint64_t LongModePageTableBytes(uint64_t identity_map_bytes) {
  uint64_t pds = (identity_map_bytes + kGiB - 1) / kGiB;
  return (2 + pds) * kPageBytes;
}

absl::Status SetupLongMode(Vcpu& vcpu, const LongModeConfig& config, const GuestPhysWriter& write) {
  uint64_t pds = (config.identity_map_bytes + kGiB - 1) / kGiB;
  if (pds == 0 || pds > 512) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "long mode: identity_map_bytes %#x must be in (0, 512 GiB]", config.identity_map_bytes));
  }
  if (config.page_tables_gpa % kPageBytes != 0 || config.gdt_gpa % 8 != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("long mode: page_tables_gpa %#x must be 4 KiB aligned and gdt_gpa %#x 8 "
                        "byte aligned",
                        config.page_tables_gpa, config.gdt_gpa));
  }
  if (!write) return absl::InvalidArgumentError("long mode: no guest memory writer");

  // PML4 -> one PDPT -> `pds` page directories of 2 MiB pages.
  std::vector<uint64_t> tables((2 + pds) * 512, 0);
  const uint64_t base = config.page_tables_gpa;
  tables[0] = (base + kPageBytes) | kPteRw;
  for (uint64_t i = 0; i < pds; ++i) {
    tables[512 + i] = (base + (2 + i) * kPageBytes) | kPteRw;
    for (uint64_t j = 0; j < 512; ++j) {
      tables[(2 + i) * 512 + j] = (i * kGiB + j * kTwoMiB) | kPdeLarge;
    }
  }
  absl::Status s = write(base, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(tables.data()),
                                                   tables.size() * sizeof(uint64_t)));
  if (!s.ok()) return s;
  s = write(config.gdt_gpa,
            absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(kGdt), sizeof(kGdt)));
  if (!s.ok()) return s;

  absl::StatusOr<kvm_sregs> sregs = vcpu.GetSregs();
  if (!sregs.ok()) return sregs.status();
  sregs->gdt.base = config.gdt_gpa;
  sregs->gdt.limit = sizeof(kGdt) - 1;
  sregs->cs = FlatSegment(0x08, /*code=*/true, /*long_mode=*/true);
  SetFlatDataSegments(*sregs, 0x10);
  sregs->cr3 = base;
  sregs->cr4 = kCr4Pae;
  sregs->cr0 = kCr0Pe | kCr0Mp | kCr0Et | kCr0Ne | kCr0Wp | kCr0Am | kCr0Pg;
  sregs->efer = kEferLme | kEferLma;
  if (s = vcpu.SetSregs(*sregs); !s.ok()) return s;

  kvm_regs regs{};
  regs.rflags = 0x2;
  regs.rip = config.entry;
  regs.rsp = config.stack;
  return vcpu.SetRegs(regs);
}

}  // namespace amalgam::vcpu
