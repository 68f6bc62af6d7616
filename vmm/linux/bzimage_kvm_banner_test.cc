// Boots the Debian bzImage (tools/make-guest.sh) through the 64-bit boot protocol on real KVM,
// with LoadBzImage's boot_params/E820/initrd and vmm/acpi's tables, until the kernel prints its
// banner on a polled COM1. Manual: on this machine kind (/dev/kvm is PVM) the bzImage's
// decompressor runs emulated and the banner takes minutes (peers.md: ~90 s for QEMU when idle).
//   bazel test //vmm/linux:bzimage_kvm_banner_test --test_output=streamed
// Env: AMALGAM_GUEST_DIR (default out/guest), AMALGAM_BANNER_TIMEOUT_S (default 600),
// AMALGAM_BANNER_MARKER (default "Linux version"; e.g. "ACPI: Using ACPI (MADT)" to run on until
// the kernel has read the E820 map and the ACPI tables).
#include <limits.h>
#include <stdlib.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include "memory/guest_memory.h"
#include "vcpu/bus.h"
#include "vcpu/cpuid.h"
#include "vcpu/kvm.h"
#include "vcpu/regs.h"
#include "vcpu/runner.h"
#include "vcpu/vm.h"
#include "vmm/acpi/write_tables.h"
#include "vmm/linux/bzimage.h"

namespace amalgam::vmm::linux_boot {
namespace {

std::string GuestDir() {
  if (const char* dir = getenv("AMALGAM_GUEST_DIR")) return dir;
  char real[PATH_MAX];
  if (realpath("vmm/linux/BUILD", real) == nullptr) return "";
  std::string path(real);
  return path.substr(0, path.size() - std::string("vmm/linux/BUILD").size()) + "out/guest";
}

bool ReadFile(const std::string& path, std::vector<uint8_t>* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  out->assign(s.begin(), s.end());
  return true;
}

// A polled 16550 stand-in: THR collects bytes, LSR always says "transmitter empty". Raises the
// stop flag once the banner has been printed.
class BannerUart : public vcpu::BusDevice {
 public:
  BannerUart(std::shared_ptr<vcpu::StopFlag> stop, std::string marker)
      : stop_(std::move(stop)), marker_(std::move(marker)) {}
  void Read(uint64_t offset, absl::Span<uint8_t> data) override {
    for (auto& b : data) b = 0;
    if (offset == 5) data[0] = 0x60;  // LSR: THRE | TEMT
  }
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override {
    if (offset != 0 || data.empty()) return;
    std::lock_guard<std::mutex> lock(mu_);
    out_.push_back(static_cast<char>(data[0]));
    std::cout << static_cast<char>(data[0]) << std::flush;
    if (data[0] == '\n' && out_.find(marker_) != std::string::npos) stop_->Request(1);
  }
  std::string output() {
    std::lock_guard<std::mutex> lock(mu_);
    return out_;
  }

 private:
  std::shared_ptr<vcpu::StopFlag> stop_;
  const std::string marker_;
  std::mutex mu_;
  std::string out_;
};

TEST_CASE("The Debian bzImage boots to its banner through LoadBzImage on KVM") {
  std::string dir = GuestDir();
  std::vector<uint8_t> image, initrd;
  if (dir.empty() || !ReadFile(dir + "/vmlinuz", &image) ||
      !ReadFile(dir + "/initramfs.cpio.gz", &initrd)) {
    WARN("SKIPPED: no guest image in '" << dir << "'; build it with tools/make-guest.sh");
    return;
  }
  auto kvm = vcpu::Kvm::Open();
  if (!kvm.ok()) {
    WARN("SKIPPED: " << kvm.status().ToString());
    return;
  }
  auto vm = vcpu::Vm::Create(**kvm);
  REQUIRE(vm.ok());
  auto mem = memory::GuestMemory::Create(memory::GuestMemory::X86Layout(512 << 20));
  REQUIRE(mem.ok());
  uint32_t slot = 0;
  for (const memory::GuestRegion& r : (*mem)->regions()) {
    vcpu::MemorySlot s;
    s.slot = slot++;
    s.guest_phys_addr = r.start().value();
    s.size = r.size();
    s.host_address = r.host_address();
    REQUIRE((*vm)->SetUserMemoryRegion(s).ok());
  }
  REQUIRE((*vm)->SetIdentityMapAddr(0xfeffc000).ok());
  REQUIRE((*vm)->SetTssAddr(0xfeffd000).ok());
  REQUIRE((*vm)->CreateIrqchip().ok());
  REQUIRE((*vm)->CreatePit2().ok());
  auto cpu = (*vm)->CreateVcpu(0);
  REQUIRE(cpu.ok());
  auto supported = (*kvm)->GetSupportedCpuid();
  REQUIRE(supported.ok());
  vcpu::CpuidEntries cpuid = vcpu::BuildVcpuCpuid(*supported, vcpu::CpuidConfig());
  // PVM cannot emulate cmpxchg16b at CPL0 (peers.md); the kernel then avoids it.
  if (auto* leaf1 = vcpu::FindCpuidEntry(cpuid, 1)) leaf1->ecx &= ~(1u << 13);
  REQUIRE((*cpu)->SetCpuid2(cpuid).ok());

  acpi::AcpiConfig acpi_config;
  auto tables = acpi::Build(acpi_config);
  REQUIRE(tables.ok());
  auto rsdp = acpi::WriteAcpiTables(*tables, **mem);
  REQUIRE(rsdp.ok());

  BzImageOptions o;
  o.cmdline = "earlyprintk=ttyS0 console=ttyS0 noxsave reboot=t panic=-1";
  o.initrd = initrd;
  o.rsdp_addr = *rsdp;
  auto boot = LoadBzImage(**mem, image, o);
  INFO(boot.status().ToString());
  REQUIRE(boot.ok());

  vcpu::LongModeConfig lm;
  lm.identity_map_bytes = uint64_t{4} << 30;
  lm.entry = boot->entry;
  auto writer = [&](uint64_t gpa, absl::Span<const uint8_t> data) {
    return (*mem)->Write(memory::GuestAddress(gpa), data);
  };
  REQUIRE(vcpu::SetupLongMode(**cpu, lm, writer).ok());
  auto regs = (*cpu)->GetRegs();
  REQUIRE(regs.ok());
  regs->rsi = boot->boot_params;
  REQUIRE((*cpu)->SetRegs(*regs).ok());

  auto stop = std::make_shared<vcpu::StopFlag>();
  std::string marker = "Linux version";
  if (const char* m = getenv("AMALGAM_BANNER_MARKER")) marker = m;
  auto uart = std::make_shared<BannerUart>(stop, marker);
  auto pio = std::make_shared<vcpu::Bus>();
  REQUIRE(pio->Insert(uart, 0x3f8, 8).ok());
  vcpu::VcpuRunner runner(cpu->get(), pio, std::make_shared<vcpu::Bus>(), stop);
  runner.set_guest_reader([&](uint64_t gpa, absl::Span<uint8_t> out) {
    return (*mem)->Read(memory::GuestAddress(gpa), out).ok();
  });

  int timeout_s = 600;
  if (const char* t = getenv("AMALGAM_BANNER_TIMEOUT_S")) timeout_s = atoi(t);
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::atomic<bool> timed_out{false};
  std::thread watchdog([&] {
    std::unique_lock<std::mutex> lock(mu);
    if (!cv.wait_for(lock, std::chrono::seconds(timeout_s), [&] { return done; })) {
      timed_out = true;
      runner.Kick();
    }
  });
  auto start = std::chrono::steady_clock::now();
  absl::StatusOr<vcpu::VcpuExit> exit = runner.Run();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  {
    std::lock_guard<std::mutex> lock(mu);
    done = true;
  }
  cv.notify_all();
  watchdog.join();
  REQUIRE(exit.ok());
  INFO("exit: " << exit->ToString() << " after " << secs << " s; timed out: " << timed_out
                << "\nconsole:\n"
                << uart->output());
  CHECK(exit->reason == vcpu::VcpuExitReason::kStopRequested);
  CHECK(uart->output().find(marker) != std::string::npos);
  std::cout << "\n\"" << marker << "\" after " << secs << " s\n";
}

}  // namespace
}  // namespace amalgam::vmm::linux_boot
