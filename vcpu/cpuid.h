// CPUID tables: per-vCPU set-up from KVM_GET_SUPPORTED_CPUID (APIC IDs, hypervisor bit) with a
// hook for named CPU templates. Pure functions over value types; thread-safe.
#ifndef AMALGAM_VCPU_CPUID_H_
#define AMALGAM_VCPU_CPUID_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "vcpu/kvm_uapi.h"

namespace amalgam::vcpu {

using CpuidEntries = std::vector<kvm_cpuid_entry2>;

// A named CPU template (e.g. "the features every node has") edits the table after the per-vCPU
// fields are set. Empty = no template.
using CpuTemplate = std::function<void(CpuidEntries& entries)>;

struct CpuidConfig {
  uint32_t apic_id = 0;        // this vCPU's (x2)APIC ID
  uint32_t num_vcpus = 1;      // vCPUs in the VM, for the topology leaves
  bool hypervisor_bit = true;  // CPUID.1:ECX[31]
  CpuTemplate cpu_template;
};

// The entry for (function, index), or nullptr. `index` is ignored for leaves whose index is not
// significant.
const kvm_cpuid_entry2* FindCpuidEntry(const CpuidEntries& entries, uint32_t function,
                                       uint32_t index = 0);
kvm_cpuid_entry2* FindCpuidEntry(CpuidEntries& entries, uint32_t function, uint32_t index = 0);

// Copies `supported` and sets, for this vCPU: leaf 1 EBX[31:24] = APIC ID (and the logical
// processor count in EBX[23:16]), leaves 0xB and 0x1F EDX = x2APIC ID with a flat topology
// (one package, one thread per core, num_vcpus cores; a missing core sub-leaf is added), AMD's
// 0x80000008 core count, the hypervisor bit; then applies the template.
CpuidEntries BuildVcpuCpuid(const CpuidEntries& supported, const CpuidConfig& config);

}  // namespace amalgam::vcpu

#endif  // AMALGAM_VCPU_CPUID_H_
