#include "vcpu/cpu_template.h"

#include <sys/ioctl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <initializer_list>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace amalgam::vcpu {
namespace {

constexpr uint32_t kExtendedBase = 0x80000000;
constexpr uint32_t kExtendedEnd = 0x8fffffff;
constexpr uint32_t kHypervisorBase = 0x40000000;
constexpr uint32_t kMsrArchCapabilities = 0x10a;

constexpr uint32_t Bits(std::initializer_list<int> bits) {
  uint32_t v = 0;
  for (int b : bits) v |= 1u << b;
  return v;
}

uint32_t& Reg(kvm_cpuid_entry2& e, CpuidRegister r) {
  switch (r) {
    case CpuidRegister::kEax:
      return e.eax;
    case CpuidRegister::kEbx:
      return e.ebx;
    case CpuidRegister::kEcx:
      return e.ecx;
    case CpuidRegister::kEdx:
      break;
  }
  return e.edx;
}

bool MaskMatches(const CpuidMask& m, const kvm_cpuid_entry2& e) {
  if (e.function != m.function) return false;
  if (m.all_indices || (e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) == 0) return true;
  return e.index == m.index;
}

// Removes the leaves of [first, last] above `cap` and lowers the range's max-leaf value.
void CapRange(CpuidEntries& entries, uint32_t first, uint32_t last, uint32_t cap) {
  entries.erase(std::remove_if(entries.begin(), entries.end(),
                               [&](const kvm_cpuid_entry2& e) {
                                 return e.function >= first && e.function <= last &&
                                        e.function > cap;
                               }),
                entries.end());
  if (kvm_cpuid_entry2* top = FindCpuidEntry(entries, first); top != nullptr) {
    top->eax = std::min(top->eax, cap);
  }
}

// Keep-lists rather than deny-lists: a feature bit defined after this was written stays hidden.
CpuTemplateSpec Baseline() {
  CpuTemplateSpec t;
  t.name = "baseline";
  t.description =
      "x86-64-v2 level (SSE..SSE4.2, SSSE3, POPCNT, CX16, LAHF) plus x2APIC, TSC-deadline, PCID, "
      "XSAVE limited to x87|SSE, NX, SYSCALL and the speculation-control bits; no AVX*, AVX-512, "
      "AMX, FMA, BMI, MOVBE, AES/PCLMUL, TSX, MPX, SGX, PKU, LA57, WAITPKG, PMU, "
      "IA32_ARCH_CAPABILITIES; max leaves 0xD / 0x80000008";
  auto keep = [&t](uint32_t function, uint32_t index, bool all, CpuidRegister reg, uint32_t bits) {
    t.masks.push_back({function, index, all, reg, ~bits, 0});
  };
  using R = CpuidRegister;
  // 1.ECX: SSE3, SSSE3, CX16, PCID, SSE4.1, SSE4.2, x2APIC, POPCNT, TSC-deadline, XSAVE, OSXSAVE,
  // hypervisor. PCID is kept: Westmere-era and later CPUs have it and Linux uses it for cheap
  // KPTI address-space switches; it is an ordinary bit, so an intersection drops it if one node
  // lacks it.
  keep(1, 0, false, R::kEcx, Bits({0, 9, 13, 17, 19, 20, 21, 23, 24, 26, 27, 31}));
  // 1.EDX: the classic set (FPU..SSE2, SS, HTT); no PSN, DS, ACPI, TM, PBE.
  keep(1, 0, false, R::kEdx, Bits({0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  11, 12,
                                   13, 14, 15, 16, 17, 19, 23, 24, 25, 26, 27, 28}));
  // 7.0: EAX (max sub-leaf) 0; EBX FSGSBASE, TSC_ADJUST, SMEP, ERMS, SMAP; ECX nothing (no PKU,
  // WAITPKG, LA57, AVX-512 VBMI/...); EDX MD_CLEAR, SPEC_CTRL, STIBP, L1D_FLUSH, SSBD (guests need
  // them to pick mitigations). ARCH_CAPABILITIES (EDX 29) goes: the MSR's value differs per CPU
  // and this machine's KVM refuses every non-zero value (QEMU: "failed to set MSR 0x10a").
  keep(7, 0, false, R::kEax, 0);
  keep(7, 0, false, R::kEbx, Bits({0, 1, 7, 9, 20}));
  keep(7, 0, false, R::kEcx, 0);
  keep(7, 0, false, R::kEdx, Bits({10, 26, 27, 28, 31}));
  for (uint32_t sub : {1u, 2u}) {  // AVX-VNNI, AVX512_BF16, AMX-FP16, ...
    for (R r : {R::kEax, R::kEbx, R::kEcx, R::kEdx}) keep(7, sub, false, r, 0);
  }
  // 0xA: no architectural PMU (counter MSRs differ between CPU generations).
  for (R r : {R::kEax, R::kEbx, R::kEcx, R::kEdx}) keep(0xa, 0, false, r, 0);
  // 0xD.1: XSAVEOPT only (no XSAVEC/XSAVES/XFD, no supervisor state).
  keep(0xd, 1, false, R::kEax, Bits({0}));
  keep(0xd, 1, false, R::kEcx, 0);
  keep(0xd, 1, false, R::kEdx, 0);
  // 0x80000001: LAHF/SAHF; SYSCALL, NX, RDTSCP, LM (no LZCNT, PREFETCHW, 1 GiB pages, SVM).
  keep(0x80000001, 0, false, R::kEcx, Bits({0}));
  keep(0x80000001, 0, false, R::kEdx, Bits({11, 20, 27, 29}));
  t.max_basic_leaf = 0xd;  // drops PT, SGX, AMX tile and AVX10 leaves
  t.max_extended_leaf = 0x80000008;
  t.xsave_components = 0x3;  // x87 | SSE
  t.hidden_msrs = {kMsrArchCapabilities};
  return t;
}

CpuTemplateSpec Host() {
  CpuTemplateSpec t;
  t.name = "host";
  t.description = "everything KVM_GET_SUPPORTED_CPUID reports, unchanged (single-machine use)";
  return t;
}

}  // namespace

absl::Status ValidateCpuTemplate(const CpuTemplateSpec& spec) {
  if (spec.name.empty() || !std::all_of(spec.name.begin(), spec.name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
      })) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "CPU template name \"%s\": use lower-case letters, digits, '-' or '_'", spec.name));
  }
  if (spec.max_basic_leaf && *spec.max_basic_leaf >= kHypervisorBase) {
    return absl::InvalidArgumentError(
        absl::StrFormat("CPU template %s: max_basic_leaf %#x must be below 0x40000000", spec.name,
                        *spec.max_basic_leaf));
  }
  if (spec.max_extended_leaf &&
      (*spec.max_extended_leaf < kExtendedBase || *spec.max_extended_leaf > kExtendedEnd)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "CPU template %s: max_extended_leaf %#x must be in [0x80000000, 0x8fffffff]", spec.name,
        *spec.max_extended_leaf));
  }
  for (const CpuidMask& m : spec.masks) {
    if ((m.clear & m.force) != 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "CPU template %s: mask for leaf %#x.%u both clears and forces bits %#x; pick one",
          spec.name, m.function, m.index, m.clear & m.force));
    }
  }
  if (spec.hidden_msrs.size() > KVM_MSR_FILTER_MAX_RANGES) {
    return absl::InvalidArgumentError(
        absl::StrFormat("CPU template %s hides %d MSRs; at most %d are supported", spec.name,
                        spec.hidden_msrs.size(), KVM_MSR_FILTER_MAX_RANGES));
  }
  if (spec.xsave_components && (*spec.xsave_components & 0x3) != 0x3) {
    return absl::InvalidArgumentError(
        absl::StrFormat("CPU template %s: xsave_components %#x must include x87 and SSE (0x3)",
                        spec.name, *spec.xsave_components));
  }
  return absl::OkStatus();
}

void ApplyCpuTemplate(const CpuTemplateSpec& spec, CpuidEntries& entries) {
  if (spec.max_basic_leaf) CapRange(entries, 0, kHypervisorBase - 1, *spec.max_basic_leaf);
  if (spec.max_extended_leaf) {
    CapRange(entries, kExtendedBase, kExtendedEnd, *spec.max_extended_leaf);
  }
  for (const CpuidMask& m : spec.masks) {
    for (kvm_cpuid_entry2& e : entries) {
      if (!MaskMatches(m, e)) continue;
      uint32_t& r = Reg(e, m.reg);
      r = (r & ~m.clear) | m.force;
    }
  }
  if (spec.xsave_components) CutXsaveComponents(*spec.xsave_components, entries);
}

CpuTemplate MakeCpuTemplateHook(const CpuTemplateSpec& spec) {
  return [spec](CpuidEntries& entries) { ApplyCpuTemplate(spec, entries); };
}

const std::vector<CpuTemplateSpec>& BuiltinCpuTemplates() {
  static const auto* const kTemplates = new std::vector<CpuTemplateSpec>{Host(), Baseline()};
  return *kTemplates;
}

absl::StatusOr<CpuTemplateSpec> FindCpuTemplate(absl::string_view name) {
  std::vector<std::string> names;
  for (const CpuTemplateSpec& t : BuiltinCpuTemplates()) {
    if (t.name == name) return t;
    names.push_back(t.name);
  }
  return absl::NotFoundError(absl::StrFormat("unknown CPU template \"%s\"; available: %s", name,
                                             absl::StrJoin(names, ", ")));
}

std::vector<uint32_t> FilterMsrIndices(const CpuTemplateSpec& spec,
                                       absl::Span<const uint32_t> msr_indices) {
  std::vector<uint32_t> out;
  for (uint32_t i : msr_indices) {
    if (std::find(spec.hidden_msrs.begin(), spec.hidden_msrs.end(), i) == spec.hidden_msrs.end()) {
      out.push_back(i);
    }
  }
  return out;
}

namespace {

absl::Status InstallMsrFilter(Vm& vm, const CpuTemplateSpec& spec) {
  if (spec.hidden_msrs.empty()) return absl::OkStatus();
  if (vm.CheckExtension(KVM_CAP_X86_MSR_FILTER) <= 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "CPU template %s hides MSRs but KVM lacks KVM_CAP_X86_MSR_FILTER; use a template "
        "without hidden_msrs (e.g. host) or a newer kernel",
        spec.name));
  }
  // One single-MSR range per hidden MSR; a 0 bit in a range's bitmap denies the access, and a
  // denied guest access gets #GP (no userspace MSR exits are enabled). Host accesses are not
  // filtered.
  static const uint8_t kDeny = 0;
  kvm_msr_filter filter{};
  filter.flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
  for (size_t i = 0; i < spec.hidden_msrs.size(); ++i) {
    filter.ranges[i].flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
    filter.ranges[i].nmsrs = 1;
    filter.ranges[i].base = spec.hidden_msrs[i];
    filter.ranges[i].bitmap = const_cast<uint8_t*>(&kDeny);
  }
  if (::ioctl(vm.fd(), KVM_X86_SET_MSR_FILTER, &filter) != 0) {
    return absl::InternalError(absl::StrFormat("CPU template %s: KVM_X86_SET_MSR_FILTER: %s",
                                               spec.name, std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CpuidEntries> SetupVcpuCpu(Vm& vm, Vcpu& vcpu, const CpuidEntries& supported,
                                          const CpuidConfig& config, const CpuTemplateSpec& spec) {
  if (config.cpu_template) {
    return absl::InvalidArgumentError(
        "SetupVcpuCpu: config.cpu_template is set; pass the template as `spec` instead");
  }
  if (absl::Status s = ValidateCpuTemplate(spec); !s.ok()) return s;
  CpuidConfig with_template = config;
  with_template.cpu_template = MakeCpuTemplateHook(spec);
  CpuidEntries table = BuildVcpuCpuid(supported, with_template);
  if (absl::Status s = vcpu.SetCpuid2(table); !s.ok()) {
    return absl::Status(s.code(), absl::StrFormat("CPU template %s: %s", spec.name, s.message()));
  }
  if (!spec.pinned_msrs.empty()) {
    std::vector<kvm_msr_entry> pins;
    for (const MsrPin& p : spec.pinned_msrs) {
      kvm_msr_entry e{};
      e.index = p.index;
      e.data = p.value;
      pins.push_back(e);
    }
    if (absl::Status s = vcpu.SetMsrs(pins); !s.ok()) {
      return absl::Status(s.code(),
                          absl::StrFormat("CPU template %s pins MSRs: %s", spec.name, s.message()));
    }
  }
  if (absl::Status s = InstallMsrFilter(vm, spec); !s.ok()) return s;
  return table;
}

}  // namespace amalgam::vcpu
