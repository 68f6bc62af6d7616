// Named CPU templates: what CPUID features and MSRs a guest may see, so that every node of a fleet
// (and this PVM machine kind) presents the same, conservative CPU. Value types and pure functions
// (thread-safe), except SetupVcpuCpu, which configures one Vcpu (call it from one thread).
#ifndef AMALGAM_VCPU_CPU_TEMPLATE_H_
#define AMALGAM_VCPU_CPU_TEMPLATE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "vcpu/cpuid.h"
#include "vcpu/vcpu.h"
#include "vcpu/vm.h"

namespace amalgam::vcpu {

enum class CpuidRegister { kEax, kEbx, kEcx, kEdx };

// Edits one register of one CPUID leaf: value = (value & ~clear) | force. A leaf the table does
// not have is left absent (a mask never invents leaves).
struct CpuidMask {
  uint32_t function = 0;
  uint32_t index = 0;        // sub-leaf; ignored when all_indices or the leaf is not indexed
  bool all_indices = false;  // every sub-leaf of `function`
  CpuidRegister reg = CpuidRegister::kEax;
  uint32_t clear = 0;
  uint32_t force = 0;
};

// An MSR value the VMM writes before the vCPU first runs (KVM_SET_MSRS, host-initiated).
struct MsrPin {
  uint32_t index = 0;
  uint64_t value = 0;
};

// The description of a CPU template. (`CpuTemplate` in cpuid.h is the hook BuildVcpuCpuid calls;
// MakeCpuTemplateHook turns a spec into one.)
struct CpuTemplateSpec {
  std::string name;  // [a-z0-9_-]+, what --cpu-template takes
  std::string description;
  std::vector<CpuidMask> masks;
  // Caps of CPUID.0:EAX / CPUID.80000000h:EAX. Leaves above a cap are removed from the table.
  std::optional<uint32_t> max_basic_leaf;
  std::optional<uint32_t> max_extended_leaf;
  // XCR0 | IA32_XSS components a guest may enable (bit i = XSAVE component i). Leaf 0xD is cut
  // down to them: supported-component bits, component sub-leaves, and the XSAVE area sizes.
  std::optional<uint64_t> xsave_components;
  // MSRs the guest must not see (at most 16): SetupVcpuCpu installs a KVM MSR filter that turns
  // guest accesses into #GP, and the VMM must neither save, restore nor set them
  // (FilterMsrIndices). A template that hides an MSR also clears the CPUID bit announcing it
  // (0x10a <-> CPUID.7.0:EDX[29]); the filter is what enforces it where that bit is not
  // honoured (PVM keeps the host's leaf 7 in the vCPU's table).
  std::vector<uint32_t> hidden_msrs;
  std::vector<MsrPin> pinned_msrs;
};

// Checks names, leaf caps, masks (clear and force must not overlap) and the XSAVE components
// (x87 and SSE must stay). INVALID_ARGUMENT naming the field.
absl::Status ValidateCpuTemplate(const CpuTemplateSpec& spec);

// Applies caps, then masks, then the XSAVE cut to `entries` (in place).
void ApplyCpuTemplate(const CpuTemplateSpec& spec, CpuidEntries& entries);

// The hook for CpuidConfig::cpu_template (it holds its own copy of `spec`).
CpuTemplate MakeCpuTemplateHook(const CpuTemplateSpec& spec);

// Built-in templates: "host" (the table KVM supports, unchanged) and "baseline" (an
// x86-64-v2-level CPU; see cpu_template.cc for the exact feature list and why).
const std::vector<CpuTemplateSpec>& BuiltinCpuTemplates();
// NOT_FOUND listing the available names when `name` is unknown.
absl::StatusOr<CpuTemplateSpec> FindCpuTemplate(absl::string_view name);

// `msr_indices` (e.g. Kvm::GetMsrIndexList() or the VcpuState MSR list) without the template's
// hidden MSRs, order kept.
std::vector<uint32_t> FilterMsrIndices(const CpuTemplateSpec& spec,
                                       absl::Span<const uint32_t> msr_indices);

// The one call per vCPU, before its first KVM_RUN: BuildVcpuCpuid(supported, config + template
// hook) -> KVM_SET_CPUID2, the pinned MSRs, and (VM-wide, idempotent) the MSR filter for the
// hidden MSRs. Returns the CPUID table given to KVM (on PVM, KVM_GET_CPUID2 reads back the host's
// values for some leaves instead). `config.cpu_template` must be empty (the template replaces
// it): INVALID_ARGUMENT otherwise; FAILED_PRECONDITION if MSRs are hidden and KVM lacks
// KVM_CAP_X86_MSR_FILTER.
absl::StatusOr<CpuidEntries> SetupVcpuCpu(Vm& vm, Vcpu& vcpu, const CpuidEntries& supported,
                                          const CpuidConfig& config, const CpuTemplateSpec& spec);

// The CPUID table a fleet can share: each node's KVM_GET_SUPPORTED_CPUID in, one table out that
// every node passes to BuildVcpuCpuid as `supported` (so vCPUs migrate with identical CPUID).
// Feature bits are set only if every node has them; max leaves, address sizes and max sub-leaves
// are minima; leaves missing on any node are dropped; XSAVE components whose layout differs are
// dropped; a PMU leaf (0xA) that differs is zeroed. Descriptive values (family/model, caches,
// brand) come from node 0. INVALID_ARGUMENT for no nodes, FAILED_PRECONDITION for mixed vendors.
absl::StatusOr<CpuidEntries> IntersectCpuid(const std::vector<CpuidEntries>& nodes);

// Shared by the template and the intersection: keeps only `components` of leaf 0xD.
void CutXsaveComponents(uint64_t components, CpuidEntries& entries);

}  // namespace amalgam::vcpu

#endif  // AMALGAM_VCPU_CPU_TEMPLATE_H_
