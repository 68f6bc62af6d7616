#include "vmm/devices/i8042.h"

#include <cstring>
#include <utility>

namespace amalgam::vmm::devices {
namespace {

constexpr uint8_t kStatusOutputFull = 0x01;
constexpr uint8_t kStatusSystemFlag = 0x04;
constexpr uint8_t kStatusCommandLast = 0x08;
constexpr uint8_t kStatusUnlocked = 0x10;

constexpr uint8_t kCmdReadCommandByte = 0x20;
constexpr uint8_t kCmdWriteCommandByte = 0x60;
constexpr uint8_t kCmdDisableAux = 0xa7;
constexpr uint8_t kCmdEnableAux = 0xa8;
constexpr uint8_t kCmdTestAux = 0xa9;
constexpr uint8_t kCmdSelfTest = 0xaa;
constexpr uint8_t kCmdTestKbd = 0xab;
constexpr uint8_t kCmdDisableKbd = 0xad;
constexpr uint8_t kCmdEnableKbd = 0xae;
constexpr uint8_t kCmdReadOutputPort = 0xd0;
constexpr uint8_t kCmdWriteOutputPort = 0xd1;
constexpr uint8_t kSelfTestOk = 0x55;
constexpr size_t kOutputCapacity = 16;

}  // namespace

I8042::I8042(std::shared_ptr<StopRequester> stop) : stop_(std::move(stop)) {}

void I8042::Read(uint64_t offset, absl::Span<uint8_t> data) {
  if (data.empty()) return;
  std::memset(data.data(), 0, data.size());
  absl::MutexLock lock(&mu_);
  if (offset == kDataOffset) {
    if (!output_.empty()) {
      data[0] = output_.front();
      output_.pop_front();
    }
  } else if (offset == kCommandOffset) {
    uint8_t status = kStatusSystemFlag | kStatusUnlocked;
    if (!output_.empty()) status |= kStatusOutputFull;
    if (pending_write_ != 0) status |= kStatusCommandLast;
    data[0] = status;
  } else {
    data[0] = 0xff;
  }
}

void I8042::Write(uint64_t offset, absl::Span<const uint8_t> data) {
  if (data.empty()) return;
  bool reset = false;
  {
    absl::MutexLock lock(&mu_);
    if (offset == kCommandOffset) {
      Command(data[0]);
    } else if (offset == kDataOffset) {
      Data(data[0]);
    }
    if (reset_requested_) {
      reset = true;
      reset_requested_ = false;
    }
  }
  // Outside the lock: the stop requester may kick vCPUs.
  if (reset && stop_ != nullptr) {
    stop_->RequestStop(
        ExitOutcome::Of(ExitKind::kReset, "guest requested a reset (i8042 command 0xFE)"));
  }
}

void I8042::Command(uint8_t cmd) {
  pending_write_ = 0;
  auto push = [this](uint8_t b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (output_.size() < kOutputCapacity) output_.push_back(b);
  };
  switch (cmd) {
    case kCmdReadCommandByte:
      push(command_byte_);
      break;
    case kCmdWriteCommandByte:
    case kCmdWriteOutputPort:
      pending_write_ = cmd;
      break;
    case kCmdSelfTest:
      push(kSelfTestOk);
      break;
    case kCmdTestKbd:
    case kCmdTestAux:
      push(0x00);  // "no error"
      break;
    case kCmdReadOutputPort:
      push(0x01);  // bit 0: the reset line is not asserted
      break;
    case kCmdDisableKbd:
    case kCmdEnableKbd:
    case kCmdDisableAux:
    case kCmdEnableAux:
      break;
    case kCmdResetCpu:
      reset_requested_ = true;
      break;
    default:
      break;  // unknown commands are ignored, as on many real controllers
  }
}

void I8042::Data(uint8_t value) {
  switch (pending_write_) {
    case kCmdWriteCommandByte:
      command_byte_ = value;
      break;
    case kCmdWriteOutputPort:
      // Output port bit 0 low pulls the CPU reset line.
      if ((value & 0x01) == 0) reset_requested_ = true;
      break;
    default:
      break;  // bytes for the (absent) keyboard are dropped
  }
  pending_write_ = 0;
}

}  // namespace amalgam::vmm::devices
