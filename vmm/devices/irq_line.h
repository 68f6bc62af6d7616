// IrqLine: one interrupt line from a device to the interrupt controller (a GSI on the in-kernel
// PIC/IOAPIC, or a fake in tests). Devices drive it as a level; edge-triggered ISA lines fire on
// the 0 -> 1 transition. Thread-safety: implementations must be callable from any thread.
#ifndef AMALGAM_VMM_DEVICES_IRQ_LINE_H_
#define AMALGAM_VMM_DEVICES_IRQ_LINE_H_

namespace amalgam::vmm::devices {

class IrqLine {
 public:
  virtual ~IrqLine() = default;
  virtual void SetLevel(bool asserted) = 0;
};

}  // namespace amalgam::vmm::devices

#endif  // AMALGAM_VMM_DEVICES_IRQ_LINE_H_
