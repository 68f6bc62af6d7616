#include "vcpu/cpuid.h"

namespace amalgam::vcpu {
namespace {

constexpr uint32_t kLeafFeatures = 0x1;
constexpr uint32_t kLeafTopology = 0xb;
constexpr uint32_t kLeafTopologyV2 = 0x1f;
constexpr uint32_t kLeafAmdSizes = 0x80000008;
constexpr uint32_t kHypervisorBit = 1u << 31;  // leaf 1 ECX
constexpr uint32_t kHttBit = 1u << 28;         // leaf 1 EDX

bool Matches(const kvm_cpuid_entry2& e, uint32_t function, uint32_t index) {
  if (e.function != function) return false;
  return (e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) == 0 || e.index == index;
}

// Bits needed to number `n` items (0 for n <= 1).
uint32_t BitsFor(uint32_t n) {
  uint32_t bits = 0;
  while ((1ull << bits) < n) ++bits;
  return bits;
}

// Flat topology: level 0 = SMT with one thread per core, level 1 = cores, one package.
void SetTopologyLeaf(kvm_cpuid_entry2& e, const CpuidConfig& config) {
  e.edx = config.apic_id;  // x2APIC ID, reported at every sub-leaf
  uint32_t n = config.num_vcpus == 0 ? 1 : config.num_vcpus;
  switch (e.index) {
    case 0:  // SMT
      e.eax = 0;
      e.ebx = 1;
      e.ecx = (1u << 8) | 0;
      break;
    case 1:  // core
      e.eax = BitsFor(n);
      e.ebx = n;
      e.ecx = (2u << 8) | 1;
      break;
    default:  // invalid level terminates the enumeration
      e.eax = 0;
      e.ebx = 0;
      e.ecx = e.index;
      break;
  }
}

}  // namespace

const kvm_cpuid_entry2* FindCpuidEntry(const CpuidEntries& entries, uint32_t function,
                                       uint32_t index) {
  for (const kvm_cpuid_entry2& e : entries) {
    if (Matches(e, function, index)) return &e;
  }
  return nullptr;
}

kvm_cpuid_entry2* FindCpuidEntry(CpuidEntries& entries, uint32_t function, uint32_t index) {
  for (kvm_cpuid_entry2& e : entries) {
    if (Matches(e, function, index)) return &e;
  }
  return nullptr;
}

namespace {

// KVM may report only sub-leaf 0 of the topology leaves (it does on PVM). Add the core level
// (sub-leaf 1) so a guest sees one package of num_vcpus cores rather than num_vcpus packages; a
// missing sub-leaf 2 reads as zeros, i.e. the "invalid level" that ends the enumeration.
void AddCoreLevel(CpuidEntries& entries, uint32_t leaf) {
  const kvm_cpuid_entry2* level0 = FindCpuidEntry(entries, leaf, 0);
  if (level0 == nullptr || (level0->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) == 0) return;
  bool has_level1 = false;
  for (const kvm_cpuid_entry2& e : entries) {
    if (e.function == leaf && e.index == 1) has_level1 = true;
  }
  if (has_level1) return;
  kvm_cpuid_entry2 level1 = *level0;
  level1.index = 1;
  entries.push_back(level1);
}

}  // namespace

CpuidEntries BuildVcpuCpuid(const CpuidEntries& supported, const CpuidConfig& config) {
  CpuidEntries out = supported;
  AddCoreLevel(out, kLeafTopology);
  AddCoreLevel(out, kLeafTopologyV2);
  uint32_t n = config.num_vcpus == 0 ? 1 : config.num_vcpus;
  for (kvm_cpuid_entry2& e : out) {
    if (e.function == kLeafFeatures) {
      e.ebx =
          (e.ebx & 0x0000ffffu) | ((config.apic_id & 0xffu) << 24) | ((n > 255 ? 255 : n) << 16);
      if (n > 1) e.edx |= kHttBit;
      if (config.hypervisor_bit) {
        e.ecx |= kHypervisorBit;
      } else {
        e.ecx &= ~kHypervisorBit;
      }
    } else if (e.function == kLeafTopology || e.function == kLeafTopologyV2) {
      SetTopologyLeaf(e, config);
    } else if (e.function == kLeafAmdSizes) {
      // AMD: ECX[7:0] = cores per package - 1, ECX[15:12] = APIC ID bits for the core.
      uint32_t cores = n > 256 ? 256 : n;
      e.ecx = (e.ecx & ~0xf0ffu) | (cores - 1) | (BitsFor(cores) << 12);
    }
  }
  if (config.cpu_template) config.cpu_template(out);
  return out;
}

}  // namespace amalgam::vcpu
