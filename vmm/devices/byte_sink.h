// ByteSink: where a character device's output goes (stdout, a file, a test buffer).
// FdSink writes to a file descriptor it may own. Thread-safety: Write may be called from any
// thread; FdSink relies on write(2) being atomic per call.
#ifndef AMALGAM_VMM_DEVICES_BYTE_SINK_H_
#define AMALGAM_VMM_DEVICES_BYTE_SINK_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace amalgam::vmm::devices {

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  // Best effort: a sink that cannot write (closed pipe, full disk) drops the bytes; the guest
  // must never block or crash the VMM because of its console.
  virtual void Write(absl::Span<const uint8_t> bytes) = 0;
};

class FdSink : public ByteSink {
 public:
  // Writes to `fd`; closes it on destruction when `owned`.
  FdSink(int fd, bool owned) : fd_(fd), owned_(owned) {}
  ~FdSink() override;
  FdSink(const FdSink&) = delete;
  FdSink& operator=(const FdSink&) = delete;

  // Creates/truncates `path` (mode 0644). Errors name the path and errno.
  static absl::StatusOr<std::unique_ptr<FdSink>> OpenFile(const std::string& path);

  void Write(absl::Span<const uint8_t> bytes) override;
  uint64_t dropped_bytes() const { return dropped_; }

 private:
  int fd_;
  bool owned_;
  uint64_t dropped_ = 0;  // only touched by writers; an approximate counter is good enough
};

}  // namespace amalgam::vmm::devices

#endif  // AMALGAM_VMM_DEVICES_BYTE_SINK_H_
