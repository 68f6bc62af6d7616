#include "vmm/devices/serial.h"

#include <cstring>
#include <utility>

namespace amalgam::vmm::devices {
namespace {

// Register offsets from the base port.
constexpr uint64_t kData = 0;  // RBR (read) / THR (write); DLL when DLAB
constexpr uint64_t kIer = 1;   // DLM when DLAB
constexpr uint64_t kIir = 2;   // IIR (read) / FCR (write)
constexpr uint64_t kLcr = 3;
constexpr uint64_t kMcr = 4;
constexpr uint64_t kLsr = 5;
constexpr uint64_t kMsr = 6;
constexpr uint64_t kScr = 7;

constexpr uint8_t kIerRxData = 0x01;
constexpr uint8_t kIerThrEmpty = 0x02;
constexpr uint8_t kIerLineStatus = 0x04;
constexpr uint8_t kIerMask = 0x0f;  // bit 3 (modem status) is stored but never fires

constexpr uint8_t kIirNone = 0x01;
constexpr uint8_t kIirLineStatus = 0x06;
constexpr uint8_t kIirRxData = 0x04;
constexpr uint8_t kIirThrEmpty = 0x02;
constexpr uint8_t kIirFifoEnabled = 0xc0;

constexpr uint8_t kFcrEnable = 0x01;
constexpr uint8_t kFcrClearRx = 0x02;

constexpr uint8_t kLcrDlab = 0x80;

constexpr uint8_t kMcrDtr = 0x01;
constexpr uint8_t kMcrRts = 0x02;
constexpr uint8_t kMcrOut1 = 0x04;
constexpr uint8_t kMcrOut2 = 0x08;
constexpr uint8_t kMcrLoop = 0x10;
constexpr uint8_t kMcrMask = 0x1f;

constexpr uint8_t kLsrDataReady = 0x01;
constexpr uint8_t kLsrOverrun = 0x02;
constexpr uint8_t kLsrThrEmpty = 0x20;
constexpr uint8_t kLsrTxEmpty = 0x40;

constexpr uint8_t kMsrCts = 0x10;
constexpr uint8_t kMsrDsr = 0x20;
constexpr uint8_t kMsrRi = 0x40;
constexpr uint8_t kMsrDcd = 0x80;

}  // namespace

Serial16550::Serial16550(std::shared_ptr<ByteSink> sink, std::shared_ptr<IrqLine> irq)
    : sink_(std::move(sink)), irq_(std::move(irq)) {}

void Serial16550::Read(uint64_t offset, absl::Span<uint8_t> data) {
  if (data.empty()) return;
  // Wider accesses read the register and pad with zeros (no real driver does this).
  std::memset(data.data(), 0, data.size());
  absl::MutexLock lock(&mu_);
  data[0] = offset < kRegisterCount ? ReadRegister(offset) : 0xff;
  UpdateIrq();
}

void Serial16550::Write(uint64_t offset, absl::Span<const uint8_t> data) {
  if (data.empty() || offset >= kRegisterCount) return;
  absl::MutexLock lock(&mu_);
  WriteRegister(offset, data[0]);
  UpdateIrq();
}

size_t Serial16550::EnqueueInput(absl::Span<const uint8_t> bytes) {
  absl::MutexLock lock(&mu_);
  size_t room = kInputCapacity - input_.size();
  size_t n = bytes.size() < room ? bytes.size() : room;
  input_.insert(input_.end(), bytes.begin(), bytes.begin() + n);
  if (n < bytes.size()) overrun_ = true;
  UpdateIrq();
  return n;
}

size_t Serial16550::InputSpace() {
  absl::MutexLock lock(&mu_);
  return kInputCapacity - input_.size();
}

uint8_t Serial16550::ReadRegister(uint64_t offset) {
  const bool dlab = (lcr_ & kLcrDlab) != 0;
  switch (offset) {
    case kData: {
      if (dlab) return dll_;
      if (input_.empty()) return 0;
      uint8_t b = input_.front();
      input_.pop_front();
      return b;
    }
    case kIer:
      return dlab ? dlm_ : ier_;
    case kIir: {
      uint8_t id = InterruptId();
      // Reading IIR acknowledges a THR-empty interrupt when that is what it reports.
      if (id == kIirThrEmpty) thre_pending_ = false;
      return id | ((fcr_ & kFcrEnable) ? kIirFifoEnabled : 0);
    }
    case kLcr:
      return lcr_;
    case kMcr:
      return mcr_;
    case kLsr: {
      uint8_t lsr = LineStatus();
      overrun_ = false;  // error bits clear on read
      return lsr;
    }
    case kMsr:
      return ModemStatus();
    case kScr:
      return scr_;
  }
  return 0xff;
}

void Serial16550::WriteRegister(uint64_t offset, uint8_t value) {
  const bool dlab = (lcr_ & kLcrDlab) != 0;
  switch (offset) {
    case kData:
      if (dlab) {
        dll_ = value;
      } else {
        Transmit(value);
      }
      return;
    case kIer:
      if (dlab) {
        dlm_ = value;
        return;
      }
      // Enabling the THR-empty interrupt while THR is empty (always) raises it at once.
      if ((value & kIerThrEmpty) && !(ier_ & kIerThrEmpty)) thre_pending_ = true;
      ier_ = value & kIerMask;
      return;
    case kIir:  // FCR
      if (value & kFcrClearRx) input_.clear();
      fcr_ = value & (kFcrEnable | 0xc0);  // keep enable + trigger level; reset bits self-clear
      return;
    case kLcr:
      lcr_ = value;
      return;
    case kMcr:
      mcr_ = value & kMcrMask;
      return;
    case kLsr:  // read-only (factory test register on some parts)
    case kMsr:
      return;
    case kScr:
      scr_ = value;
      return;
  }
}

void Serial16550::Transmit(uint8_t byte) {
  if (mcr_ & kMcrLoop) {
    // Loopback: the transmitter feeds the receiver; nothing leaves the chip.
    if (input_.size() < kInputCapacity) {
      input_.push_back(byte);
    } else {
      overrun_ = true;
    }
  } else if (sink_ != nullptr) {
    sink_->Write(absl::MakeConstSpan(&byte, 1));
  }
  thre_pending_ = true;
}

uint8_t Serial16550::InterruptId() const {
  // Highest priority first: line status, received data, THR empty.
  if ((ier_ & kIerLineStatus) && overrun_) return kIirLineStatus;
  if ((ier_ & kIerRxData) && !input_.empty()) return kIirRxData;
  if ((ier_ & kIerThrEmpty) && thre_pending_) return kIirThrEmpty;
  return kIirNone;
}

uint8_t Serial16550::LineStatus() const {
  uint8_t lsr = kLsrThrEmpty | kLsrTxEmpty;
  if (!input_.empty()) lsr |= kLsrDataReady;
  if (overrun_) lsr |= kLsrOverrun;
  return lsr;
}

uint8_t Serial16550::ModemStatus() const {
  if (mcr_ & kMcrLoop) {
    // Loopback wires the modem-control outputs back to the status inputs (drivers probe this).
    uint8_t msr = 0;
    if (mcr_ & kMcrDtr) msr |= kMsrDsr;
    if (mcr_ & kMcrRts) msr |= kMsrCts;
    if (mcr_ & kMcrOut1) msr |= kMsrRi;
    if (mcr_ & kMcrOut2) msr |= kMsrDcd;
    return msr;
  }
  // A terminal is always attached and ready.
  return kMsrDcd | kMsrDsr | kMsrCts;
}

void Serial16550::UpdateIrq() {
  bool level = InterruptId() != kIirNone;
  if (level == irq_level_) return;
  irq_level_ = level;
  if (irq_ != nullptr) irq_->SetLevel(level);
}

}  // namespace amalgam::vmm::devices
