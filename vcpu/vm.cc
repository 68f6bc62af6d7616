#include "vcpu/vm.h"

#include <sys/ioctl.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "vcpu/errno_status.h"
#include "vcpu/vcpu.h"

namespace amalgam::vcpu {
namespace {
constexpr uint64_t kPage = 4096;
}  // namespace

absl::StatusOr<std::unique_ptr<Vm>> Vm::Create(const Kvm& kvm) {
  int fd;
  // KVM_CREATE_VM can fail transiently with EINTR while the host sets up the MMU.
  do {
    fd = ::ioctl(kvm.fd(), KVM_CREATE_VM, 0);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return ErrnoStatus(errno, "KVM_CREATE_VM");
  return std::unique_ptr<Vm>(new Vm(kvm, ScopedFd(fd)));
}

Vm::~Vm() = default;

int Vm::CheckExtension(unsigned int cap) const {
  int r = ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap);
  return r < 0 ? 0 : r;
}

absl::Status Vm::SetUserMemoryRegion(const MemorySlot& slot) {
  if (slot.size % kPage != 0 || slot.guest_phys_addr % kPage != 0 ||
      reinterpret_cast<uintptr_t>(slot.host_address) % kPage != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "memory slot %u: gpa %#x, size %#x and host address %p must all be 4 KiB aligned",
        slot.slot, slot.guest_phys_addr, slot.size, slot.host_address));
  }
  if (slot.size != 0 && slot.guest_phys_addr + slot.size < slot.guest_phys_addr) {
    return absl::InvalidArgumentError(absl::StrFormat("memory slot %u: gpa %#x + size %#x wraps",
                                                      slot.slot, slot.guest_phys_addr, slot.size));
  }
  kvm_userspace_memory_region region{};
  region.slot = slot.slot;
  region.flags = slot.flags;
  region.guest_phys_addr = slot.guest_phys_addr;
  region.memory_size = slot.size;
  region.userspace_addr = reinterpret_cast<uint64_t>(slot.host_address);
  if (::ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region) < 0) {
    int err = errno;
    return ErrnoStatus(err, absl::StrFormat("KVM_SET_USER_MEMORY_REGION slot %u gpa %#x size %#x "
                                            "(overlapping another slot, or slot number too large?)",
                                            slot.slot, slot.guest_phys_addr, slot.size));
  }
  absl::MutexLock lock(&mu_);
  if (slot.size == 0) {
    slots_.erase(slot.slot);
  } else {
    slots_[slot.slot] = slot;
  }
  return absl::OkStatus();
}

absl::Status Vm::DeleteMemoryRegion(uint32_t slot) {
  MemorySlot empty;
  empty.slot = slot;
  return SetUserMemoryRegion(empty);
}

std::optional<MemorySlot> Vm::GetMemorySlot(uint32_t slot) const {
  absl::MutexLock lock(&mu_);
  auto it = slots_.find(slot);
  if (it == slots_.end()) return std::nullopt;
  return it->second;
}

absl::Status Vm::CreateIrqchip() {
  if (::ioctl(fd_.get(), KVM_CREATE_IRQCHIP, 0) < 0) {
    return ErrnoStatus(errno, "KVM_CREATE_IRQCHIP");
  }
  return absl::OkStatus();
}

absl::Status Vm::CreatePit2() {
  kvm_pit_config config{};
  config.flags = KVM_PIT_SPEAKER_DUMMY;
  if (::ioctl(fd_.get(), KVM_CREATE_PIT2, &config) < 0) {
    return ErrnoStatus(errno, "KVM_CREATE_PIT2 (create the irqchip first)");
  }
  return absl::OkStatus();
}

absl::Status Vm::SetTssAddr(uint64_t addr) {
  if (::ioctl(fd_.get(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(addr)) < 0) {
    return ErrnoStatus(errno, absl::StrFormat("KVM_SET_TSS_ADDR %#x", addr));
  }
  return absl::OkStatus();
}

absl::Status Vm::SetIdentityMapAddr(uint64_t addr) {
  uint64_t a = addr;
  if (::ioctl(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &a) < 0) {
    return ErrnoStatus(errno, absl::StrFormat("KVM_SET_IDENTITY_MAP_ADDR %#x", addr));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Vcpu>> Vm::CreateVcpu(uint32_t id) {
  int max = kvm_.MaxVcpus();
  if (id >= static_cast<uint32_t>(max)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "vCPU id %u is out of range: this host's KVM allows ids 0..%d (KVM_CAP_MAX_VCPUS)", id,
        max - 1));
  }
  int fd = ::ioctl(fd_.get(), KVM_CREATE_VCPU, static_cast<unsigned long>(id));
  if (fd < 0) {
    int err = errno;
    if (err == EEXIST) {
      return absl::AlreadyExistsError(
          absl::StrFormat("KVM_CREATE_VCPU: vCPU %u already exists", id));
    }
    return ErrnoStatus(err, absl::StrFormat("KVM_CREATE_VCPU %u", id));
  }
  ScopedFd owned(fd);
  size_t size = static_cast<size_t>(kvm_.VcpuMmapSize());
  void* run = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (run == MAP_FAILED) return ErrnoStatus(errno, "mmap of kvm_run");
  std::unique_ptr<Vcpu> vcpu(new Vcpu(id, std::move(owned), static_cast<kvm_run*>(run), size));
  vcpu->has_sregs2_ = CheckExtension(KVM_CAP_SREGS2) > 0;
  vcpu->has_xcrs_ = CheckExtension(KVM_CAP_XCRS) > 0;
  if (CheckExtension(KVM_CAP_XSAVE) > 0) {
    int xsave2 = CheckExtension(KVM_CAP_XSAVE2);
    vcpu->xsave_size_ = xsave2 > static_cast<int>(sizeof(kvm_xsave))
                            ? static_cast<uint32_t>(xsave2)
                            : static_cast<uint32_t>(sizeof(kvm_xsave));
    vcpu->has_xsave2_ = xsave2 > 0;
  }
  return vcpu;
}

absl::Status Vm::IrqLine(uint32_t gsi, bool level) {
  kvm_irq_level irq{};
  irq.irq = gsi;
  irq.level = level ? 1 : 0;
  if (::ioctl(fd_.get(), KVM_IRQ_LINE, &irq) < 0) {
    return ErrnoStatus(errno, absl::StrFormat("KVM_IRQ_LINE gsi %u", gsi));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> Vm::SignalMsi(uint64_t address, uint32_t data) {
  kvm_msi msi{};
  msi.address_lo = static_cast<uint32_t>(address);
  msi.address_hi = static_cast<uint32_t>(address >> 32);
  msi.data = data;
  int r = ::ioctl(fd_.get(), KVM_SIGNAL_MSI, &msi);
  if (r < 0) return ErrnoStatus(errno, absl::StrFormat("KVM_SIGNAL_MSI addr %#x", address));
  return r > 0;
}

static absl::Status Ioeventfd(int vm_fd, const Vm::IoeventfdSpec& spec, bool deassign) {
  kvm_ioeventfd io{};
  io.fd = spec.eventfd;
  io.addr = spec.addr;
  io.len = spec.len;
  if (spec.pio) io.flags |= KVM_IOEVENTFD_FLAG_PIO;
  if (spec.datamatch.has_value()) {
    io.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
    io.datamatch = *spec.datamatch;
  }
  if (deassign) io.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
  if (::ioctl(vm_fd, KVM_IOEVENTFD, &io) < 0) {
    return ErrnoStatus(errno,
                       absl::StrFormat("KVM_IOEVENTFD %s %#x len %u%s", spec.pio ? "port" : "mmio",
                                       spec.addr, spec.len, deassign ? " (deassign)" : ""));
  }
  return absl::OkStatus();
}

absl::Status Vm::RegisterIoeventfd(const IoeventfdSpec& spec) {
  return Ioeventfd(fd_.get(), spec, false);
}
absl::Status Vm::UnregisterIoeventfd(const IoeventfdSpec& spec) {
  return Ioeventfd(fd_.get(), spec, true);
}

absl::Status Vm::RegisterIrqfd(int eventfd, uint32_t gsi, int resample_fd) {
  kvm_irqfd irqfd{};
  irqfd.fd = static_cast<uint32_t>(eventfd);
  irqfd.gsi = gsi;
  if (resample_fd >= 0) {
    irqfd.flags |= KVM_IRQFD_FLAG_RESAMPLE;
    irqfd.resamplefd = static_cast<uint32_t>(resample_fd);
  }
  if (::ioctl(fd_.get(), KVM_IRQFD, &irqfd) < 0) {
    return ErrnoStatus(errno, absl::StrFormat("KVM_IRQFD gsi %u", gsi));
  }
  return absl::OkStatus();
}

absl::Status Vm::UnregisterIrqfd(int eventfd, uint32_t gsi) {
  kvm_irqfd irqfd{};
  irqfd.fd = static_cast<uint32_t>(eventfd);
  irqfd.gsi = gsi;
  irqfd.flags = KVM_IRQFD_FLAG_DEASSIGN;
  if (::ioctl(fd_.get(), KVM_IRQFD, &irqfd) < 0) {
    return ErrnoStatus(errno, absl::StrFormat("KVM_IRQFD deassign gsi %u", gsi));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint64_t>> Vm::GetDirtyLog(uint32_t slot) {
  std::optional<MemorySlot> s = GetMemorySlot(slot);
  if (!s.has_value()) {
    return absl::NotFoundError(
        absl::StrFormat("GetDirtyLog: memory slot %u is not registered", slot));
  }
  if ((s->flags & KVM_MEM_LOG_DIRTY_PAGES) == 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "GetDirtyLog: memory slot %u was registered without KVM_MEM_LOG_DIRTY_PAGES", slot));
  }
  uint64_t pages = s->size / kPage;
  std::vector<uint64_t> words((pages + 63) / 64, 0);
  kvm_dirty_log log{};
  log.slot = slot;
  log.dirty_bitmap = words.data();
  if (::ioctl(fd_.get(), KVM_GET_DIRTY_LOG, &log) < 0) {
    return ErrnoStatus(errno, absl::StrFormat("KVM_GET_DIRTY_LOG slot %u", slot));
  }
  return words;
}

absl::StatusOr<kvm_irqchip> Vm::GetIrqchip(uint32_t chip_id) const {
  kvm_irqchip chip{};
  chip.chip_id = chip_id;
  if (::ioctl(fd_.get(), KVM_GET_IRQCHIP, &chip) < 0) {
    return ErrnoStatus(errno, absl::StrFormat("KVM_GET_IRQCHIP chip %u", chip_id));
  }
  return chip;
}

absl::Status Vm::SetIrqchip(const kvm_irqchip& chip) {
  kvm_irqchip c = chip;
  if (::ioctl(fd_.get(), KVM_SET_IRQCHIP, &c) < 0) {
    return ErrnoStatus(errno, absl::StrFormat("KVM_SET_IRQCHIP chip %u", chip.chip_id));
  }
  return absl::OkStatus();
}

absl::StatusOr<kvm_pit_state2> Vm::GetPit2() const {
  kvm_pit_state2 pit{};
  if (::ioctl(fd_.get(), KVM_GET_PIT2, &pit) < 0) return ErrnoStatus(errno, "KVM_GET_PIT2");
  return pit;
}

absl::Status Vm::SetPit2(const kvm_pit_state2& pit) {
  kvm_pit_state2 p = pit;
  if (::ioctl(fd_.get(), KVM_SET_PIT2, &p) < 0) return ErrnoStatus(errno, "KVM_SET_PIT2");
  return absl::OkStatus();
}

absl::StatusOr<kvm_clock_data> Vm::GetClock() const {
  kvm_clock_data clock{};
  if (::ioctl(fd_.get(), KVM_GET_CLOCK, &clock) < 0) return ErrnoStatus(errno, "KVM_GET_CLOCK");
  return clock;
}

absl::Status Vm::SetClock(const kvm_clock_data& clock) {
  kvm_clock_data c = clock;
  c.flags &= KVM_CLOCK_REALTIME;  // only flag SET_CLOCK accepts besides none
  if (::ioctl(fd_.get(), KVM_SET_CLOCK, &c) < 0) return ErrnoStatus(errno, "KVM_SET_CLOCK");
  return absl::OkStatus();
}

}  // namespace amalgam::vcpu
