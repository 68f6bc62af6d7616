// IntersectCpuid and the leaf-0xD cut it shares with the templates (declared in cpu_template.h).
#include <algorithm>
#include <cstring>
#include <string>

#include "absl/strings/str_format.h"
#include "vcpu/cpu_template.h"

namespace amalgam::vcpu {
namespace {

constexpr uint32_t kLegacyXsaveBytes = 512 + 64;  // legacy area + XSAVE header

bool Indexed(const kvm_cpuid_entry2& e) { return (e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) != 0; }

std::string Vendor(const kvm_cpuid_entry2& leaf0) {
  char s[12];
  std::memcpy(s, &leaf0.ebx, 4);
  std::memcpy(s + 4, &leaf0.edx, 4);
  std::memcpy(s + 8, &leaf0.ecx, 4);
  return std::string(s, 12);
}

uint32_t MinBytes(uint32_t a, uint32_t b, int first_byte, int bytes) {
  uint32_t out = a;
  for (int i = first_byte; i < first_byte + bytes; ++i) {
    uint32_t shift = 8u * i;
    uint32_t m = std::min((a >> shift) & 0xff, (b >> shift) & 0xff);
    out = (out & ~(0xffu << shift)) | (m << shift);
  }
  return out;
}

// Folds node entry `o` into the running result `r` (same function and sub-leaf). Sets bit i of
// `bad_xsave` when XSAVE component i is laid out differently.
void Combine(kvm_cpuid_entry2& r, const kvm_cpuid_entry2& o, uint64_t& bad_xsave,
             bool& pmu_differs) {
  auto and_regs = [&](bool eax, bool ebx, bool ecx, bool edx) {
    if (eax) r.eax &= o.eax;
    if (ebx) r.ebx &= o.ebx;
    if (ecx) r.ecx &= o.ecx;
    if (edx) r.edx &= o.edx;
  };
  switch (r.function) {
    case 0x0:
    case 0x40000000:
    case 0x80000000:
      r.eax = std::min(r.eax, o.eax);  // max leaf of the range
      break;
    case 0x1:
      and_regs(false, false, true, true);
      break;
    case 0x6:
      and_regs(true, false, true, false);
      break;
    case 0x7:
      if (r.index == 0) {
        r.eax = std::min(r.eax, o.eax);  // max sub-leaf
        and_regs(false, true, true, true);
      } else {
        and_regs(true, true, true, true);
      }
      break;
    case 0xa:
      if (std::memcmp(&r.eax, &o.eax, 4 * sizeof(uint32_t)) != 0) pmu_differs = true;
      break;
    case 0xd:
      if (r.index == 0) {
        and_regs(true, false, false, true);  // XCR0 components; sizes recomputed afterwards
      } else if (r.index == 1) {
        and_regs(true, false, true, true);  // XSAVEOPT/C/S, IA32_XSS components
      } else if (r.index < 64 && (r.eax != o.eax || r.ebx != o.ebx || r.ecx != o.ecx)) {
        bad_xsave |= 1ull << r.index;  // size, offset or alignment differ
      }
      break;
    case 0x40000001:  // KVM paravirt features
    case 0x80000001:
      and_regs(r.function == 0x40000001, false, true, true);
      break;
    case 0x80000007:
      and_regs(false, false, false, true);
      break;
    case 0x80000008:
      r.eax = MinBytes(r.eax, o.eax, 0, 3);  // physical, linear, guest-physical address bits
      and_regs(false, true, false, false);
      break;
    case 0x80000021:
      and_regs(true, false, false, false);
      break;
    default:
      break;  // descriptive (model, caches, brand, topology): node 0's value
  }
}

void CapRangeTo(CpuidEntries& entries, uint32_t first, uint32_t last) {
  const kvm_cpuid_entry2* top = FindCpuidEntry(entries, first);
  if (top == nullptr) return;
  uint32_t cap = top->eax;
  entries.erase(std::remove_if(entries.begin(), entries.end(),
                               [&](const kvm_cpuid_entry2& e) {
                                 return e.function > first && e.function <= last &&
                                        e.function > cap;
                               }),
                entries.end());
}

}  // namespace

void CutXsaveComponents(uint64_t components, CpuidEntries& entries) {
  kvm_cpuid_entry2* e0 = FindCpuidEntry(entries, 0xd, 0);
  if (e0 == nullptr || !Indexed(*e0)) return;
  uint64_t xcr0 = ((static_cast<uint64_t>(e0->edx) << 32) | e0->eax) & components;
  e0->eax = static_cast<uint32_t>(xcr0);
  e0->edx = static_cast<uint32_t>(xcr0 >> 32);
  uint64_t xss = 0;
  if (kvm_cpuid_entry2* e1 = FindCpuidEntry(entries, 0xd, 1); e1 != nullptr && e1->index == 1) {
    xss = ((static_cast<uint64_t>(e1->edx) << 32) | e1->ecx) & components;
    e1->ecx = static_cast<uint32_t>(xss);
    e1->edx = static_cast<uint32_t>(xss >> 32);
  }
  uint32_t max_bytes = kLegacyXsaveBytes;
  for (kvm_cpuid_entry2& e : entries) {
    if (e.function != 0xd || e.index < 2 || !Indexed(e)) continue;
    bool kept = e.index < 64 && (((xcr0 | xss) >> e.index) & 1) != 0;
    if (!kept) {
      e.eax = e.ebx = e.ecx = e.edx = 0;  // "component not supported"
    } else if ((xcr0 >> e.index) & 1) {
      max_bytes = std::max(max_bytes, e.eax + e.ebx);  // EAX size, EBX offset (user state)
    }
  }
  e0->ecx = max_bytes;  // area size if every permitted component is enabled
  e0->ebx = std::min(e0->ebx, max_bytes);
}

absl::StatusOr<CpuidEntries> IntersectCpuid(const std::vector<CpuidEntries>& nodes) {
  if (nodes.empty()) {
    return absl::InvalidArgumentError(
        "IntersectCpuid: no nodes; pass each node's KVM_GET_SUPPORTED_CPUID table");
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (FindCpuidEntry(nodes[i], 0) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrFormat("IntersectCpuid: node %d's CPUID table has no leaf 0", i));
    }
  }
  const std::string vendor = Vendor(*FindCpuidEntry(nodes[0], 0));
  for (size_t i = 1; i < nodes.size(); ++i) {
    std::string v = Vendor(*FindCpuidEntry(nodes[i], 0));
    if (v != vendor) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "IntersectCpuid: node %d is \"%s\" but node 0 is \"%s\"; one guest cannot span CPU "
          "vendors (run such nodes in separate fleets)",
          i, v, vendor));
    }
  }
  CpuidEntries out;
  uint64_t bad_xsave = 0;
  bool pmu_differs = false;
  for (const kvm_cpuid_entry2& e : nodes[0]) {
    kvm_cpuid_entry2 r = e;
    bool everywhere = true;
    for (size_t i = 1; i < nodes.size() && everywhere; ++i) {
      const kvm_cpuid_entry2* o = FindCpuidEntry(nodes[i], e.function, e.index);
      if (o == nullptr) {
        everywhere = false;
      } else {
        Combine(r, *o, bad_xsave, pmu_differs);
      }
    }
    if (everywhere) out.push_back(r);
  }
  if (pmu_differs) {
    if (kvm_cpuid_entry2* pmu = FindCpuidEntry(out, 0xa); pmu != nullptr) {
      pmu->eax = pmu->ebx = pmu->ecx = pmu->edx = 0;
    }
  }
  CutXsaveComponents(~bad_xsave, out);
  CapRangeTo(out, 0, 0x3fffffff);
  CapRangeTo(out, 0x40000000, 0x4fffffff);
  CapRangeTo(out, 0x80000000, 0x8fffffff);
  return out;
}

}  // namespace amalgam::vcpu
