// Serial16550: a 16550A UART (the PC's COM1 at port 0x3F8, IRQ 4) on the port-I/O bus.
// Registers: THR/RBR, IER, IIR/FCR, LCR (with the DLAB divisor latch), MCR (with loopback), LSR,
// MSR, SCR. Transmission is instant (THRE/TEMT always set); input waits in a bounded queue.
// The interrupt line follows IIR: asserted while an enabled interrupt is pending.
// Ownership: shares the sink and the IRQ line. Thread-safety: all methods lock an internal mutex
// (vCPU threads and an input thread may call concurrently).
#ifndef AMALGAM_VMM_DEVICES_SERIAL_H_
#define AMALGAM_VMM_DEVICES_SERIAL_H_

#include <cstdint>
#include <deque>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "vcpu/bus.h"
#include "vmm/devices/byte_sink.h"
#include "vmm/devices/irq_line.h"

namespace amalgam::vmm::devices {

class Serial16550 : public vcpu::BusDevice {
 public:
  static constexpr uint16_t kCom1Port = 0x3f8;
  static constexpr uint32_t kCom1Irq = 4;
  static constexpr uint64_t kRegisterCount = 8;
  static constexpr size_t kInputCapacity = 4096;

  // `irq` may be null (no interrupts, e.g. a polled console).
  Serial16550(std::shared_ptr<ByteSink> sink, std::shared_ptr<IrqLine> irq);

  void Read(uint64_t offset, absl::Span<uint8_t> data) override;
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override;

  // Queues host input for the guest (RBR). Returns how many bytes fit; the rest are dropped and
  // flagged as an overrun (LSR.OE), as a real UART would.
  size_t EnqueueInput(absl::Span<const uint8_t> bytes);
  // Free room in the receive queue, for producers that would rather wait than overrun.
  size_t InputSpace();

 private:
  uint8_t ReadRegister(uint64_t offset) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteRegister(uint64_t offset, uint8_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Transmit(uint8_t byte) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint8_t InterruptId() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint8_t LineStatus() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint8_t ModemStatus() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drives the IRQ line to match InterruptId() (only on changes).
  void UpdateIrq() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::shared_ptr<ByteSink> sink_;
  const std::shared_ptr<IrqLine> irq_;

  absl::Mutex mu_;
  std::deque<uint8_t> input_ ABSL_GUARDED_BY(mu_);
  uint8_t ier_ ABSL_GUARDED_BY(mu_) = 0;
  uint8_t lcr_ ABSL_GUARDED_BY(mu_) = 0x03;  // 8N1
  uint8_t mcr_ ABSL_GUARDED_BY(mu_) = 0x08;  // OUT2
  uint8_t fcr_ ABSL_GUARDED_BY(mu_) = 0;
  uint8_t scr_ ABSL_GUARDED_BY(mu_) = 0;
  uint8_t dll_ ABSL_GUARDED_BY(mu_) = 0x0c;  // 9600 baud
  uint8_t dlm_ ABSL_GUARDED_BY(mu_) = 0;
  bool overrun_ ABSL_GUARDED_BY(mu_) = false;
  // The THR-empty interrupt is an event: raised when THR empties (always right after a write,
  // since output is instant) or when it is enabled, cleared by reading IIR while it is the
  // reported source.
  bool thre_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool irq_level_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace amalgam::vmm::devices

#endif  // AMALGAM_VMM_DEVICES_SERIAL_H_
