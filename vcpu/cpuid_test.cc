#include "vcpu/cpuid.h"

#include <catch2/catch.hpp>

namespace amalgam::vcpu {
namespace {

kvm_cpuid_entry2 Entry(uint32_t function, uint32_t index, bool indexed) {
  kvm_cpuid_entry2 e{};
  e.function = function;
  e.index = index;
  e.flags = indexed ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0;
  return e;
}

TEST_CASE("BuildVcpuCpuid sets APIC IDs, topology and the hypervisor bit, then the template") {
  CpuidEntries supported = {Entry(0, 0, false),  Entry(1, 0, false),  Entry(0xb, 0, true),
                            Entry(0xb, 1, true), Entry(0xb, 2, true), Entry(0x80000008, 0, false)};
  supported[1].ebx = 0xaabb1234;
  CpuidConfig config;
  config.apic_id = 5;
  config.num_vcpus = 6;
  bool template_ran = false;
  config.cpu_template = [&](CpuidEntries& e) {
    template_ran = true;
    FindCpuidEntry(e, 1)->ecx &= ~1u;
  };
  CpuidEntries out = BuildVcpuCpuid(supported, config);
  CHECK(template_ran);
  const kvm_cpuid_entry2* leaf1 = FindCpuidEntry(out, 1);
  REQUIRE(leaf1 != nullptr);
  CHECK((leaf1->ebx >> 24) == 5);
  CHECK(((leaf1->ebx >> 16) & 0xff) == 6);
  CHECK((leaf1->ebx & 0xffff) == 0x1234);  // brand/clflush bits kept
  CHECK((leaf1->ecx >> 31) == 1);
  CHECK(FindCpuidEntry(out, 0xb, 0)->edx == 5);
  CHECK(FindCpuidEntry(out, 0xb, 1)->edx == 5);
  CHECK(FindCpuidEntry(out, 0xb, 1)->ebx == 6);
  CHECK(FindCpuidEntry(out, 0xb, 1)->eax == 3);  // 2^3 >= 6
  CHECK(FindCpuidEntry(out, 0xb, 2)->ebx == 0);  // terminates enumeration
  CHECK(FindCpuidEntry(out, 0x7) == nullptr);
  CHECK(FindCpuidEntry(out, 0x80000008)->ecx == (5u | (3u << 12)));
  // The input is not modified.
  CHECK(FindCpuidEntry(supported, 1)->ebx == 0xaabb1234);

  config.hypervisor_bit = false;
  config.cpu_template = nullptr;
  CHECK((FindCpuidEntry(BuildVcpuCpuid(supported, config), 1)->ecx >> 31) == 0);
}

TEST_CASE("a topology leaf with only sub-leaf 0 gets a core level") {
  CpuidEntries supported = {Entry(1, 0, false), Entry(0xb, 0, true)};
  CpuidConfig config;
  config.apic_id = 1;
  config.num_vcpus = 2;
  CpuidEntries out = BuildVcpuCpuid(supported, config);
  const kvm_cpuid_entry2* core = FindCpuidEntry(out, 0xb, 1);
  REQUIRE(core != nullptr);
  CHECK(core->ecx == ((2u << 8) | 1));
  CHECK(core->ebx == 2);
  CHECK(core->eax == 1);
  CHECK(core->edx == 1);
  CHECK(FindCpuidEntry(out, 0xb, 2) == nullptr);
  CHECK(FindCpuidEntry(out, 0x1f, 1) == nullptr);  // no 0x1F leaf to extend
}

}  // namespace
}  // namespace amalgam::vcpu
