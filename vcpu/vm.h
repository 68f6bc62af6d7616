// Vm: one KVM VM fd: memory slots, in-kernel irqchip/PIT, interrupts, ioeventfd/irqfd, dirty log,
// vCPU creation.
// Ownership: owns the VM fd; vCPUs it creates hold their own fds and may outlive nothing: destroy
// them before the Vm. Thread-safety: all methods may be called from any thread (KVM serializes
// VM ioctls; the slot table is locked).
#ifndef AMALGAM_VCPU_VM_H_
#define AMALGAM_VCPU_VM_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "vcpu/kvm.h"
#include "vcpu/kvm_uapi.h"
#include "vcpu/scoped_fd.h"

namespace amalgam::vcpu {

class Vcpu;

// One guest-physical memory slot as registered with KVM.
struct MemorySlot {
  uint32_t slot = 0;
  uint64_t guest_phys_addr = 0;
  uint64_t size = 0;             // bytes, page multiple; 0 deletes the slot
  void* host_address = nullptr;  // page aligned
  uint32_t flags = 0;            // KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY
};

class Vm {
 public:
  // KVM_CREATE_VM (x86 default type). The Kvm must outlive the Vm.
  static absl::StatusOr<std::unique_ptr<Vm>> Create(const Kvm& kvm);
  ~Vm();
  Vm(const Vm&) = delete;
  Vm& operator=(const Vm&) = delete;

  int fd() const { return fd_.get(); }
  const Kvm& kvm() const { return kvm_; }
  // KVM_CHECK_EXTENSION on the VM fd (some values, e.g. KVM_CAP_XSAVE2, are per VM).
  int CheckExtension(unsigned int cap) const;

  // KVM_SET_USER_MEMORY_REGION; validates alignment and slot number first.
  absl::Status SetUserMemoryRegion(const MemorySlot& slot);
  absl::Status DeleteMemoryRegion(uint32_t slot);
  std::optional<MemorySlot> GetMemorySlot(uint32_t slot) const;

  absl::Status CreateIrqchip();                    // in-kernel PIC + IOAPIC + LAPICs
  absl::Status CreatePit2();                       // in-kernel i8254 (speaker dummy off)
  absl::Status SetTssAddr(uint64_t addr);          // 3 pages below 4 GiB, outside RAM
  absl::Status SetIdentityMapAddr(uint64_t addr);  // 1 page, outside RAM

  // Creates vCPU `id` (also its APIC ID). INVALID_ARGUMENT when id >= Kvm::MaxVcpus(),
  // ALREADY_EXISTS when that id was created before.
  absl::StatusOr<std::unique_ptr<Vcpu>> CreateVcpu(uint32_t id);

  // KVM_IRQ_LINE: set the level of a GSI on the in-kernel irqchip.
  absl::Status IrqLine(uint32_t gsi, bool level);
  // KVM_SIGNAL_MSI: returns true when delivered, false when the guest blocked it.
  absl::StatusOr<bool> SignalMsi(uint64_t address, uint32_t data);

  // KVM_IOEVENTFD: `eventfd` is signalled on a guest write to addr (len 0/1/2/4/8 bytes).
  struct IoeventfdSpec {
    int eventfd = -1;
    uint64_t addr = 0;
    uint32_t len = 0;
    bool pio = false;  // port I/O instead of MMIO
    std::optional<uint64_t> datamatch;
  };
  absl::Status RegisterIoeventfd(const IoeventfdSpec& spec);
  absl::Status UnregisterIoeventfd(const IoeventfdSpec& spec);
  // KVM_IRQFD: writing `eventfd` raises GSI `gsi`; resample_fd >= 0 makes it level-triggered.
  absl::Status RegisterIrqfd(int eventfd, uint32_t gsi, int resample_fd = -1);
  absl::Status UnregisterIrqfd(int eventfd, uint32_t gsi);

  // KVM_GET_DIRTY_LOG for a slot registered with KVM_MEM_LOG_DIRTY_PAGES: one bit per page,
  // as 64-bit words (bit i of word w = page w*64+i of the slot). Resets the log.
  absl::StatusOr<std::vector<uint64_t>> GetDirtyLog(uint32_t slot);

  // In-kernel irqchip state (chip_id KVM_IRQCHIP_PIC_MASTER / _PIC_SLAVE / _IOAPIC) and PIT,
  // VM-wide state saved and restored beside the vCPU states.
  absl::StatusOr<kvm_irqchip> GetIrqchip(uint32_t chip_id) const;
  absl::Status SetIrqchip(const kvm_irqchip& chip);
  absl::StatusOr<kvm_pit_state2> GetPit2() const;
  absl::Status SetPit2(const kvm_pit_state2& pit);

  // kvmclock, VM-wide (saved and restored beside the vCPU states).
  absl::StatusOr<kvm_clock_data> GetClock() const;
  absl::Status SetClock(const kvm_clock_data& clock);

 private:
  Vm(const Kvm& kvm, ScopedFd fd) : kvm_(kvm), fd_(std::move(fd)) {}

  const Kvm& kvm_;
  ScopedFd fd_;
  mutable absl::Mutex mu_;
  std::map<uint32_t, MemorySlot> slots_ ABSL_GUARDED_BY(mu_);
};

}  // namespace amalgam::vcpu

#endif  // AMALGAM_VCPU_VM_H_
