#include "vcpu/test_vm.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>

#include "absl/strings/str_format.h"
#include "vcpu/cpuid.h"

namespace amalgam::vcpu::testing {

absl::StatusOr<std::unique_ptr<TestVm>> TestVm::Create(const TestVmOptions& options) {
  std::unique_ptr<TestVm> t(new TestVm());
  absl::StatusOr<std::unique_ptr<Kvm>> kvm = Kvm::Open();
  if (!kvm.ok()) return kvm.status();
  t->kvm_ = std::move(*kvm);
  absl::StatusOr<std::unique_ptr<Vm>> vm = Vm::Create(*t->kvm_);
  if (!vm.ok()) return vm.status();
  t->vm_ = std::move(*vm);
  void* ram = mmap(nullptr, options.ram_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (ram == MAP_FAILED) return absl::ResourceExhaustedError("mmap test RAM");
  t->ram_ = static_cast<uint8_t*>(ram);
  t->ram_bytes_ = options.ram_bytes;
  MemorySlot slot;
  slot.slot = 0;
  slot.guest_phys_addr = 0;
  slot.size = options.ram_bytes;
  slot.host_address = ram;
  slot.flags = KVM_MEM_LOG_DIRTY_PAGES;
  if (absl::Status s = t->vm_->SetUserMemoryRegion(slot); !s.ok()) return s;
  if (options.irqchip) {
    if (absl::Status s = t->vm_->CreateIrqchip(); !s.ok()) return s;
  }
  if (absl::Status s = t->vm_->SetTssAddr(0xfffbd000); !s.ok()) return s;
  absl::StatusOr<CpuidEntries> supported = t->kvm_->GetSupportedCpuid();
  if (!supported.ok()) return supported.status();
  for (uint32_t i = 0; i < options.num_vcpus; ++i) {
    absl::StatusOr<std::unique_ptr<Vcpu>> vcpu = t->vm_->CreateVcpu(i);
    if (!vcpu.ok()) return vcpu.status();
    CpuidConfig config;
    config.apic_id = i;
    config.num_vcpus = options.num_vcpus;
    if (absl::Status s = (*vcpu)->SetCpuid2(BuildVcpuCpuid(*supported, config)); !s.ok()) {
      return s;
    }
    t->vcpus_.push_back(std::move(*vcpu));
  }
  return t;
}

TestVm::~TestVm() {
  vcpus_.clear();
  vm_.reset();
  if (ram_ != nullptr) munmap(ram_, ram_bytes_);
}

void TestVm::Load(uint64_t gpa, const std::vector<uint8_t>& bytes) {
  if (gpa > ram_bytes_ || bytes.size() > ram_bytes_ - gpa) std::abort();
  if (bytes.empty()) return;
  std::memcpy(ram_ + gpa, bytes.data(), bytes.size());
}

absl::StatusOr<std::unique_ptr<TestVm>> TestVm::CreateRealMode(uint64_t entry,
                                                               const std::vector<uint8_t>& code,
                                                               const TestVmOptions& options) {
  absl::StatusOr<std::unique_ptr<TestVm>> vm = Create(options);
  if (!vm.ok()) return vm;
  (*vm)->Load(entry, code);
  if (absl::Status s = (*vm)->SetRealMode(0, entry); !s.ok()) return s;
  return vm;
}

uint64_t LittleEndian(const std::vector<uint8_t>& bytes) {
  uint64_t v = 0;
  for (size_t i = 0; i < bytes.size() && i < 8; ++i) v |= uint64_t{bytes[i]} << (8 * i);
  return v;
}

absl::Status TestVm::SetRealMode(size_t i, uint64_t entry) {
  Vcpu& v = *vcpus_[i];
  absl::StatusOr<kvm_sregs> sregs = v.GetSregs();
  if (!sregs.ok()) return sregs.status();
  for (kvm_segment* seg :
       {&sregs->cs, &sregs->ds, &sregs->es, &sregs->fs, &sregs->gs, &sregs->ss}) {
    seg->base = 0;
    seg->selector = 0;
  }
  if (absl::Status s = v.SetSregs(*sregs); !s.ok()) return s;
  kvm_regs regs{};
  regs.rip = entry;
  regs.rsp = 0x7000;
  regs.rflags = 0x2;
  return v.SetRegs(regs);
}

GuestPhysReader TestVm::Reader() {
  return [this](uint64_t gpa, absl::Span<uint8_t> out) {
    if (gpa > ram_bytes_ || out.size() > ram_bytes_ - gpa) return false;
    std::memcpy(out.data(), ram_ + gpa, out.size());
    return true;
  };
}

void RecordingDevice::Read(uint64_t offset, absl::Span<uint8_t> data) {
  uint64_t v = read_value;
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(v >> (8 * (i % 8)));
  read_value += read_step;
  accesses.push_back({false, offset, std::vector<uint8_t>(data.begin(), data.end())});
}

void RecordingDevice::Write(uint64_t offset, absl::Span<const uint8_t> data) {
  accesses.push_back({true, offset, std::vector<uint8_t>(data.begin(), data.end())});
}

}  // namespace amalgam::vcpu::testing
