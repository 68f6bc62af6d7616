// Pure logic: masks, caps, the XSAVE cut, the built-in templates, lookup and the intersection.
#include "vcpu/cpu_template.h"

#include <catch2/catch.hpp>
#include <cstring>

namespace amalgam::vcpu {
namespace {

kvm_cpuid_entry2 E(uint32_t function, uint32_t index, bool indexed, uint32_t eax, uint32_t ebx,
                   uint32_t ecx, uint32_t edx) {
  kvm_cpuid_entry2 e{};
  e.function = function;
  e.index = index;
  e.flags = indexed ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0;
  e.eax = eax;
  e.ebx = ebx;
  e.ecx = ecx;
  e.edx = edx;
  return e;
}

constexpr uint32_t kIntelEbx = 0x756e6547, kIntelEdx = 0x49656e69, kIntelEcx = 0x6c65746e;

// What this project's machine (a Sapphire Rapids, AVX-512 and AMX) reports, trimmed.
CpuidEntries NewIntel() {
  return {E(0, 0, false, 0x24, kIntelEbx, kIntelEcx, kIntelEdx),
          E(1, 0, false, 0x000a0671, 0x00020800, 0xf7f83203, 0x1f8bfbff),
          E(7, 0, true, 2, 0xf1bf2bfb, 0x1a005f46, 0xbd814410),
          E(7, 1, true, 0x00001c30, 0, 0, 0x00004000),
          E(0xa, 0, false, 0x08300805, 0, 0, 0x00008603),
          E(0xd, 0, true, 0xe7, 0xa80, 0xa80, 0),
          E(0xd, 1, true, 0xf, 0x988, 0x1900, 0),
          E(0xd, 2, true, 0x100, 0x240, 0, 0),
          E(0xd, 5, true, 0x40, 0x440, 0, 0),
          E(0xd, 6, true, 0x200, 0x480, 0, 0),
          E(0xd, 7, true, 0x400, 0x680, 0, 0),
          E(0x1d, 0, true, 1, 0, 0, 0),
          E(0x80000000, 0, false, 0x80000008, 0, 0, 0),
          E(0x80000001, 0, false, 0, 0, 0x121, 0x2c100800),
          E(0x80000008, 0, false, 0x3030, 0, 0, 0)};
}

// An older Intel node: AVX2 but no AVX-512/AMX, 39 physical address bits, max leaf 0x16.
CpuidEntries OldIntel() {
  return {E(0, 0, false, 0x16, kIntelEbx, kIntelEcx, kIntelEdx),
          E(1, 0, false, 0x000506e3, 0x00100800, 0x7ffafbff, 0xbfebfbff),
          E(7, 0, true, 0, 0x029c6fbf, 0x40000000, 0xbc002e00),
          E(0xa, 0, false, 0x07300404, 0, 0, 0x00000603),
          E(0xd, 0, true, 0x7, 0x340, 0x340, 0),
          E(0xd, 1, true, 0x1, 0, 0, 0),
          E(0xd, 2, true, 0x100, 0x240, 0, 0),
          E(0x14, 0, true, 1, 0, 0, 0),
          E(0x80000000, 0, false, 0x80000008, 0, 0, 0),
          E(0x80000001, 0, false, 0, 0, 0x121, 0x2c100800),
          E(0x80000008, 0, false, 0x3027, 0, 0, 0)};
}

constexpr uint32_t kAvx = 1u << 28, kFma = 1u << 12, kMovbe = 1u << 22, kSse42 = 1u << 20,
                   kPopcnt = 1u << 23, kCx16 = 1u << 13, kX2apic = 1u << 21, kHypervisor = 1u << 31;
constexpr uint32_t kAvx2 = 1u << 5, kAvx512f = 1u << 16, kRtm = 1u << 11, kHle = 1u << 4;
constexpr uint32_t kPku = 1u << 3, kLa57 = 1u << 16, kWaitpkg = 1u << 5;
constexpr uint32_t kAmxTile = 1u << 24, kArchCaps = 1u << 29;

TEST_CASE("a mask clears and forces bits of one register, on the right sub-leaves only") {
  CpuidEntries t = {E(1, 0, false, 0, 0, 0xff, 0), E(7, 0, true, 0, 0xff, 0, 0),
                    E(7, 1, true, 0xff, 0xff, 0, 0)};
  CpuTemplateSpec s;
  s.name = "m";
  s.masks = {{1, 9, false, CpuidRegister::kEcx, 0x0f, 0x100},  // index ignored: not indexed
             {7, 1, false, CpuidRegister::kEbx, 0xf0, 0},
             {7, 0, true, CpuidRegister::kEax, 0x01, 0},
             {0x80000001, 0, false, CpuidRegister::kEdx, 0, 1}};
  REQUIRE(ValidateCpuTemplate(s).ok());
  ApplyCpuTemplate(s, t);
  CHECK(FindCpuidEntry(t, 1)->ecx == 0x1f0);
  CHECK(FindCpuidEntry(t, 7, 0)->ebx == 0xff);
  CHECK(FindCpuidEntry(t, 7, 1)->ebx == 0x0f);
  CHECK(FindCpuidEntry(t, 7, 1)->eax == 0xfe);
  CHECK(t.size() == 3);  // a force on an absent leaf invents nothing
}

TEST_CASE("leaf caps remove higher leaves and never raise the maximum") {
  CpuidEntries t = NewIntel();
  CpuTemplateSpec s;
  s.name = "c";
  s.max_basic_leaf = 0x7;
  s.max_extended_leaf = 0x8000001f;  // above what the table has
  ApplyCpuTemplate(s, t);
  CHECK(FindCpuidEntry(t, 0)->eax == 0x7);
  CHECK(FindCpuidEntry(t, 0xd, 0) == nullptr);
  CHECK(FindCpuidEntry(t, 0x1d) == nullptr);
  CHECK(FindCpuidEntry(t, 7, 1) != nullptr);
  CHECK(FindCpuidEntry(t, 0x80000000)->eax == 0x80000008);
  CHECK(FindCpuidEntry(t, 0x80000008) != nullptr);
}

TEST_CASE("baseline hides AVX*, AVX-512, AMX, TSX, PKU, LA57, MOVBE and keeps the v2 set") {
  CpuidEntries t = NewIntel();
  auto baseline = FindCpuTemplate("baseline");
  REQUIRE(baseline.ok());
  ApplyCpuTemplate(*baseline, t);
  const kvm_cpuid_entry2* l1 = FindCpuidEntry(t, 1);
  CHECK((l1->ecx & (kAvx | kFma | kMovbe)) == 0);
  CHECK((l1->ecx & (kSse42 | kPopcnt | kCx16 | kX2apic | kHypervisor | 1u)) ==
        (kSse42 | kPopcnt | kCx16 | kX2apic | kHypervisor | 1u));
  CHECK(l1->edx == 0x1f8bfbff);  // the classic set is all kept
  const kvm_cpuid_entry2* l7 = FindCpuidEntry(t, 7, 0);
  CHECK(l7->eax == 0);
  CHECK((l7->ebx & (kAvx2 | kAvx512f | kRtm | kHle | (1u << 14) | (1u << 2))) == 0);
  CHECK((l7->ebx & 1u) == 1u);  // FSGSBASE
  CHECK((l7->ecx & (kPku | kLa57 | kWaitpkg)) == 0);
  CHECK((l7->edx & (kAmxTile | kArchCaps)) == 0);
  CHECK((l7->edx & (1u << 26)) != 0);  // SPEC_CTRL stays (mitigations)
  CHECK(FindCpuidEntry(t, 7, 1)->eax == 0);
  CHECK(FindCpuidEntry(t, 0xa)->eax == 0);
  const kvm_cpuid_entry2* xs = FindCpuidEntry(t, 0xd, 0);
  CHECK(xs->eax == 0x3);
  CHECK(xs->ecx == 576);
  CHECK(xs->ebx == 576);
  CHECK(FindCpuidEntry(t, 0xd, 1)->eax == 0x1);  // XSAVEOPT only
  CHECK(FindCpuidEntry(t, 0xd, 2)->eax == 0);    // AVX state gone
  CHECK(FindCpuidEntry(t, 0xd, 7)->ebx == 0);
  CHECK(FindCpuidEntry(t, 0)->eax == 0xd);
  CHECK(FindCpuidEntry(t, 0x1d) == nullptr);
  CHECK(FindCpuidEntry(t, 0x80000001)->ecx == 0x1);         // LAHF; no LZCNT/PREFETCHW
  CHECK(FindCpuidEntry(t, 0x80000001)->edx == 0x28100800);  // no 1 GiB pages
  CHECK(baseline->hidden_msrs == std::vector<uint32_t>{0x10a});
}

TEST_CASE("host changes nothing; the hook runs after the per-vCPU fields") {
  auto host = FindCpuTemplate("host");
  REQUIRE(host.ok());
  CpuidEntries t = NewIntel();
  ApplyCpuTemplate(*host, t);
  REQUIRE(t.size() == NewIntel().size());
  CHECK(std::memcmp(t.data(), NewIntel().data(), t.size() * sizeof(t[0])) == 0);

  CpuidConfig config;
  config.apic_id = 3;
  config.num_vcpus = 4;
  config.cpu_template = MakeCpuTemplateHook(*FindCpuTemplate("baseline"));
  CpuidEntries v = BuildVcpuCpuid(NewIntel(), config);
  CHECK((FindCpuidEntry(v, 1)->ebx >> 24) == 3);
  CHECK((FindCpuidEntry(v, 1)->ecx & kAvx) == 0);
  CHECK((FindCpuidEntry(v, 1)->edx & (1u << 28)) != 0);  // HTT (4 vCPUs) survives the template
}

TEST_CASE("templates validate; lookup of an unknown name lists the available ones") {
  for (const CpuTemplateSpec& t : BuiltinCpuTemplates()) {
    INFO(t.name);
    CHECK(ValidateCpuTemplate(t).ok());
    CHECK_FALSE(t.description.empty());
  }
  auto missing = FindCpuTemplate("skylake");
  CHECK(missing.status().code() == absl::StatusCode::kNotFound);
  CHECK(missing.status().message() ==
        "unknown CPU template \"skylake\"; available: host, baseline");

  CpuTemplateSpec bad;
  bad.name = "Bad Name";
  CHECK(ValidateCpuTemplate(bad).code() == absl::StatusCode::kInvalidArgument);
  bad.name = "x";
  bad.masks = {{1, 0, false, CpuidRegister::kEcx, 0x3, 0x2}};
  CHECK(ValidateCpuTemplate(bad).message().find("both clears and forces bits 0x2") !=
        std::string::npos);
  bad.masks.clear();
  bad.xsave_components = 0x1;
  CHECK(ValidateCpuTemplate(bad).message().find("x87 and SSE") != std::string::npos);
  bad.xsave_components.reset();
  bad.max_basic_leaf = 0x40000001;
  CHECK(ValidateCpuTemplate(bad).code() == absl::StatusCode::kInvalidArgument);
  bad.max_basic_leaf.reset();
  bad.max_extended_leaf = 0x1f;
  CHECK(ValidateCpuTemplate(bad).message().find("max_extended_leaf") != std::string::npos);
}

TEST_CASE("FilterMsrIndices drops the hidden MSRs and keeps the order") {
  auto baseline = FindCpuTemplate("baseline");
  REQUIRE(baseline.ok());
  std::vector<uint32_t> all = {0x10, 0x10a, 0x174, 0xc0000080, 0x10a};
  CHECK(FilterMsrIndices(*baseline, all) == std::vector<uint32_t>{0x10, 0x174, 0xc0000080});
  CHECK(FilterMsrIndices(*FindCpuTemplate("host"), all) == all);
}

TEST_CASE("IntersectCpuid keeps a feature bit only if every node has it") {
  auto common = IntersectCpuid({NewIntel(), OldIntel()});
  REQUIRE(common.ok());
  const CpuidEntries a = NewIntel(), b = OldIntel();
  // Every feature register of the result is a subset of each node's.
  for (auto [f, i] : {std::pair<uint32_t, uint32_t>{1, 0}, {7, 0}, {0x80000001, 0}}) {
    const kvm_cpuid_entry2* r = FindCpuidEntry(*common, f, i);
    REQUIRE(r != nullptr);
    for (const CpuidEntries* n : {&a, &b}) {
      const kvm_cpuid_entry2* x = FindCpuidEntry(*n, f, i);
      CHECK((r->ecx & ~x->ecx) == 0);
      CHECK((r->edx & ~x->edx) == 0);
      if (f == 7) CHECK((r->ebx & ~x->ebx) == 0);
    }
  }
  CHECK(FindCpuidEntry(*common, 1)->ecx == (0xf7f83203u & 0x7ffafbffu));
  CHECK(FindCpuidEntry(*common, 7, 0)->ebx == (0xf1bf2bfbu & 0x029c6fbfu));
  CHECK((FindCpuidEntry(*common, 7, 0)->ebx & kAvx2) != 0);     // both have AVX2
  CHECK((FindCpuidEntry(*common, 7, 0)->ebx & kAvx512f) == 0);  // only one has AVX-512
  CHECK(FindCpuidEntry(*common, 7, 0)->eax == 0);               // min max-sub-leaf
  CHECK(FindCpuidEntry(*common, 7, 1) == nullptr);              // only on one node
  CHECK(FindCpuidEntry(*common, 0)->eax == 0x16);               // min max leaf
  CHECK(FindCpuidEntry(*common, 0x1d) == nullptr);
  CHECK(FindCpuidEntry(*common, 0x14) == nullptr);
  CHECK(FindCpuidEntry(*common, 1)->eax == 0x000a0671);  // descriptive: node 0's
  CHECK(FindCpuidEntry(*common, 0x80000008)->eax == 0x3027);
  CHECK(FindCpuidEntry(*common, 0xa)->eax == 0);  // PMUs differ: no PMU
  const kvm_cpuid_entry2* xs = FindCpuidEntry(*common, 0xd, 0);
  CHECK(xs->eax == 0x7);  // x87, SSE, AVX
  CHECK(xs->ecx == 0x340);
  CHECK(FindCpuidEntry(*common, 0xd, 1)->eax == 0x1);
  CHECK(FindCpuidEntry(*common, 0xd, 2)->eax == 0x100);

  // Order of nodes does not change which features survive.
  auto reversed = IntersectCpuid({OldIntel(), NewIntel()});
  REQUIRE(reversed.ok());
  CHECK(FindCpuidEntry(*reversed, 7, 0)->ebx == FindCpuidEntry(*common, 7, 0)->ebx);
  CHECK(FindCpuidEntry(*reversed, 0xd, 0)->eax == xs->eax);

  // A template on top of the fleet table: baseline still cuts AVX.
  CpuidConfig config;
  config.cpu_template = MakeCpuTemplateHook(*FindCpuTemplate("baseline"));
  CpuidEntries v = BuildVcpuCpuid(*common, config);
  CHECK((FindCpuidEntry(v, 1)->ecx & kAvx) == 0);
  CHECK(FindCpuidEntry(v, 0xd, 0)->eax == 0x3);
}

TEST_CASE("IntersectCpuid: one node is itself; differing XSAVE layouts drop the component") {
  auto one = IntersectCpuid({NewIntel()});
  REQUIRE(one.ok());
  CHECK(FindCpuidEntry(*one, 7, 0)->ebx == 0xf1bf2bfb);
  CHECK(FindCpuidEntry(*one, 0xd, 0)->ecx == 0xa80);

  CpuidEntries odd = NewIntel();
  FindCpuidEntry(odd, 0xd, 5)->ebx = 0x4c0;  // opmask state at another offset
  auto common = IntersectCpuid({NewIntel(), odd});
  REQUIRE(common.ok());
  CHECK(FindCpuidEntry(*common, 0xd, 0)->eax == (0xe7u & ~(1u << 5)));
  CHECK(FindCpuidEntry(*common, 0xd, 5)->eax == 0);
  CHECK(FindCpuidEntry(*common, 0xd, 7)->eax == 0x400);
}

TEST_CASE("IntersectCpuid rejects no nodes, a missing leaf 0 and mixed vendors") {
  CHECK(IntersectCpuid({}).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(IntersectCpuid({NewIntel(), {E(1, 0, false, 0, 0, 0, 0)}})
            .status()
            .message()
            .find("node 1") != std::string::npos);
  CpuidEntries amd = OldIntel();
  FindCpuidEntry(amd, 0)->ebx = 0x68747541;  // "AuthenticAMD"
  FindCpuidEntry(amd, 0)->edx = 0x69746e65;
  FindCpuidEntry(amd, 0)->ecx = 0x444d4163;
  auto mixed = IntersectCpuid({NewIntel(), amd});
  CHECK(mixed.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(mixed.status().message().find("AuthenticAMD") != std::string::npos);
}

}  // namespace
}  // namespace amalgam::vcpu
