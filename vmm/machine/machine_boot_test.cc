// Machine boot paths on real KVM with synthetic guests: the ACPI tables every boot gets (and the
// power-off port they name), a PVH initrd, a bzImage entered through the 64-bit boot protocol,
// and the errors for bad kernels and initrds.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <string>

#include "vmm/devices/power_off.h"
#include "vmm/devices/test_util.h"
#include "vmm/linux/test_bzimage.h"
#include "vmm/loader/pvh_boot.h"
#include "vmm/loader/test_elf.h"
#include "vmm/machine/kernel_boot.h"
#include "vmm/machine/machine.h"
#include "vmm/machine/machine_testutil.h"

namespace amalgam::vmm::machine {
namespace {

using loader::WriteTestFile;
using loader::WriteTestKernel;
using testing::PortRecorder;

MachineConfig Config(const std::string& kernel, uint32_t vcpus = 1) {
  return testing::SmallConfig(kernel, vcpus);
}

template <typename T>
T ReadAt(Machine& vm, uint64_t gpa) {
  T v{};
  REQUIRE(vm.memory()
              .Read(memory::GuestAddress(gpa),
                    absl::MakeSpan(reinterpret_cast<uint8_t*>(&v), sizeof(v)))
              .ok());
  return v;
}

std::string ReadString(Machine& vm, uint64_t gpa, size_t n) {
  std::string s(n, '\0');
  REQUIRE(
      vm.memory()
          .Read(memory::GuestAddress(gpa), absl::MakeSpan(reinterpret_cast<uint8_t*>(s.data()), n))
          .ok());
  return s;
}

// Follows RSDP -> XSDT to the table with `sig`; 0 when absent.
uint64_t FindTable(Machine& vm, uint64_t rsdp, const std::string& sig) {
  REQUIRE(ReadString(vm, rsdp, 8) == "RSD PTR ");
  uint64_t xsdt = ReadAt<uint64_t>(vm, rsdp + 24);
  REQUIRE(ReadString(vm, xsdt, 4) == "XSDT");
  uint32_t len = ReadAt<uint32_t>(vm, xsdt + 4);
  for (uint64_t off = 36; off + 8 <= len; off += 8) {
    uint64_t table = ReadAt<uint64_t>(vm, xsdt + off);
    if (ReadString(vm, table, 4) == sig) return table;
  }
  return 0;
}

TEST_CASE("machine boot: ACPI tables list every vCPU and the power-off port; S5 stops the VM") {
  // mov al, 0x34; mov dx, 0x600; out dx, al (SLP_TYP 5 | SLP_EN); 1: hlt; jmp 1b
  std::vector<uint8_t> code = {0xb0, 0x34, 0x66, 0xba, 0x00, 0x06, 0xee, 0xf4, 0xeb, 0xfd};
  auto vm = Machine::Create(Config(WriteTestKernel("s5.elf", code), 2));
  INFO(vm.status().ToString());
  REQUIRE(vm.ok());
  Machine& m = **vm;
  auto start_info = ReadAt<loader::HvmStartInfo>(m, loader::kStartInfoAddr);
  REQUIRE(start_info.magic == loader::kHvmStartMagic);
  REQUIRE(start_info.rsdp_paddr != 0);
  CHECK(start_info.rsdp_paddr == m.Info().rsdp_address);
  CHECK(start_info.nr_modules == 0);
  uint64_t fadt = FindTable(m, start_info.rsdp_paddr, "FACP");
  REQUIRE(fadt != 0);
  // SLEEP_CONTROL_REG: a generic address structure at 244; its address at +4.
  CHECK(ReadAt<uint8_t>(m, fadt + 244) == 1);  // system I/O space
  CHECK(ReadAt<uint64_t>(m, fadt + 248) == devices::PowerOff::kPort);
  uint64_t madt = FindTable(m, start_info.rsdp_paddr, "APIC");
  REQUIRE(madt != 0);
  int lapics = 0;
  uint32_t len = ReadAt<uint32_t>(m, madt + 4);
  for (uint64_t off = 44; off + 2 <= len;) {
    uint8_t type = ReadAt<uint8_t>(m, madt + off);
    uint8_t entry_len = ReadAt<uint8_t>(m, madt + off + 1);
    REQUIRE(entry_len >= 2);
    if (type == 0) ++lapics;
    off += entry_len;
  }
  CHECK(lapics == 2);
  CHECK(FindTable(m, start_info.rsdp_paddr, "DSDT") == 0);  // reached through the FADT instead

  REQUIRE(m.Start().ok());
  ExitOutcome out = m.Wait();
  CHECK(out.kind == ExitKind::kPowerOff);
  CHECK(out.detail == "power-off");
  CHECK(ExitStatusFor(out) == 0);
}

TEST_CASE("machine boot: a PVH initrd is a start_info module above the kernel") {
  std::vector<uint8_t> initrd(10000);
  for (size_t i = 0; i < initrd.size(); ++i) initrd[i] = static_cast<uint8_t>(i * 13 + 1);
  MachineConfig c = Config(WriteTestKernel("initrd_guest.elf", {0xf4}));
  c.initrd_path = WriteTestFile("initrd.img", initrd);
  auto vm = Machine::Create(c);
  INFO(vm.status().ToString());
  REQUIRE(vm.ok());
  auto start_info = ReadAt<loader::HvmStartInfo>(**vm, loader::kStartInfoAddr);
  REQUIRE(start_info.nr_modules == 1);
  uint64_t paddr = ReadAt<uint64_t>(**vm, start_info.modlist_paddr);
  uint64_t size = ReadAt<uint64_t>(**vm, start_info.modlist_paddr + 8);
  CHECK(size == initrd.size());
  CHECK(paddr >= 0x100000 + 0x1000);
  CHECK(paddr % 4096 == 0);
  CHECK(paddr + size <= (32u << 20));
  std::string got = ReadString(**vm, paddr, initrd.size());
  CHECK(std::memcmp(got.data(), initrd.data(), initrd.size()) == 0);
}

TEST_CASE("machine boot: initrd errors are one line naming the file") {
  MachineConfig c = Config(WriteTestKernel("hlt.elf", {0xf4}));
  c.initrd_path = "/nonexistent/initrd.img";
  auto vm = Machine::Create(c);
  REQUIRE_FALSE(vm.ok());
  CHECK(std::string(vm.status().message()) ==
        "initrd /nonexistent/initrd.img: no such file; pass the path of an initramfs (cpio "
        "archive) to --initrd");
  c.initrd_path = WriteTestFile("big_initrd.img", std::vector<uint8_t>(40 << 20, 1));
  vm = Machine::Create(c);
  REQUIRE_FALSE(vm.ok());
  CHECK(std::string(vm.status().message()).find("initrd " + c.initrd_path + ": initrd is") == 0);
  c.initrd_path = WriteTestFile("empty_initrd.img", {});
  vm = Machine::Create(c);
  REQUIRE_FALSE(vm.ok());
  CHECK(std::string(vm.status().message()).find(": empty file") != std::string::npos);
}

TEST_CASE("machine boot: a bzImage starts in long mode at load + 0x200 with Linux's selectors") {
  linux_boot::FakeBzImageSpec spec;
  std::vector<uint8_t> image = linux_boot::MakeBzImage(spec);
  REQUIRE(LooksLikeBzImage(image));
  // 64-bit code at the 64-bit entry (protected-mode kernel offset 0x200):
  //   mov eax, cs; out 0x10, al; mov eax, ds; out 0x10, al; mov eax, ss; out 0x10, al
  //   pushfq; pop rax; mov al, ah; out 0x10, al   (RFLAGS bits 8-15: IF is bit 1 here)
  //   mov eax, esi; mov dx, 0xf4; out dx, eax     (debug-exit with the boot_params address)
  const std::vector<uint8_t> code = {0x8c, 0xc8, 0xe6, 0x10, 0x8c, 0xd8, 0xe6, 0x10, 0x8c,
                                     0xd0, 0xe6, 0x10, 0x9c, 0x58, 0x88, 0xe0, 0xe6, 0x10,
                                     0x89, 0xf0, 0x66, 0xba, 0xf4, 0x00, 0xef, 0xf4};
  const size_t kernel_offset = (spec.setup_sects + 1) * 512;
  std::copy(code.begin(), code.end(), image.begin() + kernel_offset + 0x200);
  auto vm = Machine::Create(Config(WriteTestFile("fake.bzImage", image)));
  INFO(vm.status().ToString());
  REQUIRE(vm.ok());
  MachineInfo info = (*vm)->Info();
  CHECK(info.linux_boot_protocol);
  CHECK(info.kernel_entry == spec.pref_address + 0x200);
  // boot_params.acpi_rsdp_addr (0x070) points at the RSDP.
  CHECK(ReadAt<uint64_t>(**vm, 0x7000 + 0x70) == info.rsdp_address);
  auto rec = std::make_shared<PortRecorder>();
  REQUIRE((*vm)->pio_bus().Insert(rec, 0x10, 1).ok());
  REQUIRE((*vm)->Start().ok());
  ExitOutcome out = (*vm)->Wait();
  INFO(out.detail);
  REQUIRE(out.kind == ExitKind::kDebugExit);
  CHECK(out.debug_exit_value == 0x7000);
  REQUIRE(rec->got().size() == 4);
  CHECK(rec->got()[0] == 0x10);
  CHECK(rec->got()[1] == 0x18);
  CHECK(rec->got()[2] == 0x18);
  CHECK((rec->got()[3] & 0x2) == 0);  // IF clear
}

TEST_CASE("machine boot: bad bzImages are one line naming the kernel file") {
  linux_boot::FakeBzImageSpec old;
  old.version = 0x0209;
  std::string path = WriteTestFile("old.bzImage", linux_boot::MakeBzImage(old));
  auto vm = Machine::Create(Config(path));
  REQUIRE_FALSE(vm.ok());
  CHECK(std::string(vm.status().message()).find("kernel " + path + ": ") == 0);
  CHECK(std::string(vm.status().message()).find("kernel image") == std::string::npos);

  std::vector<uint8_t> image = linux_boot::MakeBzImage();
  image.resize(2048);  // the protected-mode kernel is cut short
  path = WriteTestFile("truncated.bzImage", image);
  vm = Machine::Create(Config(path));
  REQUIRE_FALSE(vm.ok());
  CHECK(std::string(vm.status().message()).find("kernel " + path + ": ") == 0);

  linux_boot::FakeBzImageSpec high;
  high.pref_address = (4ull << 30) + (16 << 20);  // in RAM (6 GiB: [4 GiB, 7 GiB)), not mapped
  MachineConfig high_config = Config(WriteTestFile("high.bzImage", linux_boot::MakeBzImage(high)));
  high_config.memory_bytes = 6ull << 30;
  vm = Machine::Create(high_config);
  REQUIRE_FALSE(vm.ok());
  CHECK(std::string(vm.status().message()).find("ends above 4 GiB") != std::string::npos);

  MachineConfig small = Config(WriteTestFile("ok.bzImage", linux_boot::MakeBzImage()));
  small.memory_bytes = 8 << 20;  // below pref_address (16 MiB)
  vm = Machine::Create(small);
  REQUIRE_FALSE(vm.ok());
  CHECK(std::string(vm.status().message()).find("guest RAM must cover") != std::string::npos);
}

TEST_CASE("machine boot: a named CPU template applies to every vCPU; unknown names are refused") {
  auto sink = std::make_shared<devices::StringSink>();
  MachineConfig c = Config(WriteTestKernel("tmpl.elf", loader::SerialThenExitCode("ok\n", 3)), 2);
  c.cpu_template = "baseline";
  c.serial_out = sink;
  auto vm = Machine::Create(c);
  INFO(vm.status().ToString());
  REQUIRE(vm.ok());
  REQUIRE((*vm)->Start().ok());
  ExitOutcome out = (*vm)->Wait();
  CHECK(out.kind == ExitKind::kDebugExit);
  CHECK(out.debug_exit_value == 3);
  CHECK(sink->str() == "ok\n");

  c.cpu_template = "no-such-cpu";
  vm = Machine::Create(c);
  REQUIRE_FALSE(vm.ok());
  CHECK(std::string(vm.status().message()).find("--cpu-template: unknown CPU template") == 0);
  CHECK(std::string(vm.status().message()).find("baseline") != std::string::npos);
}

}  // namespace
}  // namespace amalgam::vmm::machine
