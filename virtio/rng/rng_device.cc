#include "virtio/rng/rng_device.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "virtio/chain_io.h"
#include "virtio/drain.h"
#include "virtio/virtio_ids.h"

namespace amalgam::virtio::rng {

absl::StatusOr<std::unique_ptr<UrandomSource>> UrandomSource::Open(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("rng source ", path, ": ", strerror(errno)));
  }
  return std::unique_ptr<UrandomSource>(new UrandomSource(fd));
}

UrandomSource::~UrandomSource() { close(fd_); }

absl::Status UrandomSource::Fill(absl::Span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = read(fd_, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::InternalError(absl::StrCat("rng read: ", strerror(errno)));
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

uint32_t RngDevice::device_id() const { return kDeviceIdRng; }

std::vector<DeviceCounter> RngDevice::Counters() const {
  return {
      {"requests", "entropy requests handled", requests_.load()},
      {"served_bytes", "random bytes given to the guest", bytes_served_.load()},
      {"request_errors", "requests left unfilled because the entropy source failed",
       source_errors_.load()},
  };
}

absl::Status RngDevice::ProcessQueue(size_t index, memory::GuestMemory& mem, Queue& queue) {
  if (index != 0) return absl::OkStatus();
  return DrainQueue(mem, queue, [&](const DescriptorChain& chain) -> absl::StatusOr<uint32_t> {
    ++requests_;
    ChainWriter writer(mem, chain);
    const uint64_t n = std::min<uint64_t>(chain.writable_bytes, kMaxBytesPerRequest);
    // A source failure leaves the buffer unfilled and reports 0 bytes: the guest just retries.
    absl::Status s = writer.ForEach(
        n, [&](uint8_t* p, uint64_t len) { return source_->Fill(absl::MakeSpan(p, len)); });
    if (!s.ok()) {
      ++source_errors_;
      return 0u;
    }
    bytes_served_ += n;
    return writer.written();
  });
}

}  // namespace amalgam::virtio::rng
