#include "memory/guest_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "absl/strings/str_format.h"

namespace amalgam::memory {
namespace {

constexpr uint64_t kGiB = 1ull << 30;
constexpr uint64_t kLowRamEnd = 3 * kGiB;  // the 32-bit MMIO hole starts here
constexpr uint64_t kHighRamStart = 4 * kGiB;

absl::Status ValidateLayout(std::vector<RegionSpec>& specs) {
  if (specs.empty()) return absl::InvalidArgumentError("guest memory: no regions given");
  for (const RegionSpec& r : specs) {
    if (r.size == 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("guest memory: region at %#x has size 0", r.start.value()));
    }
    if (r.start.value() % kPageSize != 0 || r.size % kPageSize != 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "guest memory: region start %#x and size %#x must be multiples of %u bytes",
          r.start.value(), r.size, kPageSize));
    }
    if (!r.start.CheckedAdd(r.size).has_value()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "guest memory: region at %#x of size %#x wraps past 2^64", r.start.value(), r.size));
    }
  }
  std::sort(specs.begin(), specs.end(),
            [](const RegionSpec& a, const RegionSpec& b) { return a.start < b.start; });
  uint64_t total = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    if (i > 0 && specs[i - 1].start.value() + specs[i - 1].size > specs[i].start.value()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "guest memory: regions [%#x, +%#x) and [%#x, +%#x) overlap", specs[i - 1].start.value(),
          specs[i - 1].size, specs[i].start.value(), specs[i].size));
    }
    if (specs[i].size > UINT64_MAX - total) {
      return absl::InvalidArgumentError("guest memory: total size overflows");
    }
    total += specs[i].size;
  }
  return absl::OkStatus();
}

constexpr uint64_t kHugePageSize = 2ull << 20;

// Private anonymous memory for one region, 2 MiB aligned: KVM maps a guest range with a huge page
// only where guest-physical and host addresses agree modulo 2 MiB (regions start 2 MiB aligned
// in every layout amalgam uses). Over-reserves by 2 MiB and trims, since older kernels do not
// align anonymous mappings themselves. MAP_FAILED (errno set) on failure.
void* MapPrivateHuge(uint64_t size) {
  if (size > SIZE_MAX - kHugePageSize) {  // no host maps that much; keeps the sum below exact
    errno = ENOMEM;
    return MAP_FAILED;
  }
  const uint64_t reserve = size + kHugePageSize;
  void* raw = mmap(nullptr, reserve, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return MAP_FAILED;
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kHugePageSize - 1) & ~(kHugePageSize - 1);
  if (aligned > start) munmap(raw, aligned - start);
  const uintptr_t tail = aligned + size;
  if (start + reserve > tail) munmap(reinterpret_cast<void*>(tail), start + reserve - tail);
  // Failure (THP compiled out) only costs speed.
  madvise(reinterpret_cast<void*>(aligned), size, MADV_HUGEPAGE);
  return reinterpret_cast<void*>(aligned);
}

}  // namespace

std::vector<RegionSpec> GuestMemory::X86Layout(uint64_t ram_bytes) {
  std::vector<RegionSpec> out;
  if (ram_bytes == 0) return out;
  uint64_t low = std::min(ram_bytes, kLowRamEnd);
  out.push_back({GuestAddress(0), low});
  if (ram_bytes > low) out.push_back({GuestAddress(kHighRamStart), ram_bytes - low});
  return out;
}

absl::StatusOr<std::unique_ptr<GuestMemory>> GuestMemory::Create(std::vector<RegionSpec> specs) {
  return Create(std::move(specs), Options());
}

absl::StatusOr<std::unique_ptr<GuestMemory>> GuestMemory::Create(std::vector<RegionSpec> specs,
                                                                 Options options) {
  if (absl::Status s = ValidateLayout(specs); !s.ok()) return s;
  std::unique_ptr<GuestMemory> mem(new GuestMemory());
  mem->backing_ = options.backing;
  if (options.backing == Backing::kPrivateHugePages) {
    for (const RegionSpec& spec : specs) {
      void* host = MapPrivateHuge(spec.size);
      if (host == MAP_FAILED) return MapError(spec, errno);
      mem->AddRegion(spec, host, /*memfd_offset=*/0);
    }
    return mem;
  }
  uint64_t total = 0;
  for (const RegionSpec& r : specs) total += r.size;

  mem->memfd_ = memfd_create("amalgam-guest-ram", MFD_CLOEXEC);
  if (mem->memfd_ < 0) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("guest memory: memfd_create failed: %s", std::strerror(errno)));
  }
  // Sparse: nothing is allocated until touched.
  if (total > static_cast<uint64_t>(INT64_MAX) ||
      ftruncate(mem->memfd_, static_cast<off_t>(total)) != 0) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "guest memory: cannot size the RAM file to %u bytes (%s); ask for less guest RAM", total,
        total > static_cast<uint64_t>(INT64_MAX) ? "too large" : std::strerror(errno)));
  }
  uint64_t offset = 0;
  for (const RegionSpec& spec : specs) {
    void* host = mmap(nullptr, spec.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
                      mem->memfd_, static_cast<off_t>(offset));
    if (host == MAP_FAILED) return MapError(spec, errno);
    // Page-granular faults for userfaultfd and exact dirty tracking; failure only costs speed.
    madvise(host, spec.size, MADV_NOHUGEPAGE);
    mem->AddRegion(spec, host, offset);
    offset += spec.size;
  }
  return mem;
}

absl::Status GuestMemory::MapError(const RegionSpec& spec, int err) {
  return absl::ResourceExhaustedError(absl::StrFormat(
      "guest memory: cannot map region [%#x, +%#x) (%u MiB): %s; the host's address space "
      "or mapping limits (ulimit -v, vm.max_map_count) are too small for this much guest RAM",
      spec.start.value(), spec.size, spec.size >> 20, std::strerror(err)));
}

void GuestMemory::AddRegion(const RegionSpec& spec, void* host, uint64_t memfd_offset) {
  GuestRegion region;
  region.start_ = spec.start;
  region.size_ = spec.size;
  region.host_ = static_cast<uint8_t*>(host);
  region.memfd_ = memfd_;
  region.memfd_offset_ = memfd_offset;
  regions_.push_back(region);
  dirty_.push_back(std::make_unique<DirtyBitmap>(spec.size / kPageSize));
}

GuestMemory::~GuestMemory() {
  for (const GuestRegion& r : regions_) munmap(r.host_, r.size_);
  if (memfd_ >= 0) close(memfd_);
}

uint64_t GuestMemory::total_size() const {
  uint64_t total = 0;
  for (const GuestRegion& r : regions_) total += r.size();
  return total;
}

const GuestRegion* GuestMemory::FindRegion(GuestAddress addr) const {
  // The last region starting at or before addr.
  auto it = std::upper_bound(regions_.begin(), regions_.end(), addr,
                             [](GuestAddress a, const GuestRegion& r) { return a < r.start(); });
  if (it == regions_.begin()) return nullptr;
  --it;
  return it->Contains(addr) ? &*it : nullptr;
}

bool GuestMemory::IsValidRange(GuestAddress addr, uint64_t len) const {
  const GuestRegion* r = FindRegion(addr);
  if (r == nullptr) return false;
  // addr is inside r, so end() - addr cannot underflow.
  return len <= r->end().value() - addr.value();
}

absl::StatusOr<uint8_t*> GuestMemory::GetHostAddress(GuestAddress addr, uint64_t len) const {
  const GuestRegion* r = FindRegion(addr);
  if (r == nullptr || len > r->end().value() - addr.value()) {
    return absl::OutOfRangeError(absl::StrFormat(
        "guest memory: [%#x, +%#x) is not inside one RAM region", addr.value(), len));
  }
  return r->host_address() + (addr.value() - r->start().value());
}

template <typename Fn>
absl::Status GuestMemory::ForEachPiece(GuestAddress addr, uint64_t len, const char* what,
                                       Fn fn) const {
  if (len == 0) {
    if (FindRegion(addr) == nullptr) {
      return absl::OutOfRangeError(
          absl::StrFormat("guest memory %s: %#x is not guest RAM", what, addr.value()));
    }
    return absl::OkStatus();
  }
  if (!addr.CheckedAdd(len).has_value()) {
    return absl::OutOfRangeError(
        absl::StrFormat("guest memory %s: [%#x, +%#x) wraps past 2^64", what, addr.value(), len));
  }
  // Pass 1: validate, so an error copies nothing. Pass 2: do it.
  for (int pass = 0; pass < 2; ++pass) {
    GuestAddress cur = addr;
    uint64_t left = len;
    uint64_t done = 0;
    while (left > 0) {
      const GuestRegion* r = FindRegion(cur);
      if (r == nullptr) {
        return absl::OutOfRangeError(
            absl::StrFormat("guest memory %s: [%#x, +%#x) is not all guest RAM (%#x is not)", what,
                            addr.value(), len, cur.value()));
      }
      uint64_t offset = cur.value() - r->start().value();
      uint64_t n = std::min(left, r->size() - offset);
      if (pass == 1) fn(*r, static_cast<size_t>(r - regions_.data()), offset, done, n);
      cur = cur.UncheckedAdd(n);
      left -= n;
      done += n;
    }
  }
  return absl::OkStatus();
}

absl::Status GuestMemory::Read(GuestAddress addr, absl::Span<uint8_t> out) const {
  return ForEachPiece(
      addr, out.size(), "read",
      [&](const GuestRegion& r, size_t, uint64_t offset, uint64_t done, uint64_t n) {
        std::memcpy(out.data() + done, r.host_address() + offset, n);
      });
}

absl::Status GuestMemory::Write(GuestAddress addr, absl::Span<const uint8_t> data) {
  return ForEachPiece(
      addr, data.size(), "write",
      [&](const GuestRegion& r, size_t index, uint64_t offset, uint64_t done, uint64_t n) {
        std::memcpy(r.host_address() + offset, data.data() + done, n);
        dirty_[index]->MarkRange(offset, n);
      });
}

absl::Status GuestMemory::MarkDirty(GuestAddress addr, uint64_t len) const {
  return ForEachPiece(addr, len, "mark dirty",
                      [&](const GuestRegion&, size_t index, uint64_t offset, uint64_t, uint64_t n) {
                        dirty_[index]->MarkRange(offset, n);
                      });
}

absl::Status GuestMemory::AbsorbDirtyLog(size_t region_index,
                                         absl::Span<const uint64_t> words) const {
  if (region_index >= dirty_.size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "guest memory: region index %u out of range (%u regions)", region_index, dirty_.size()));
  }
  return dirty_[region_index]->Absorb(words);
}

}  // namespace amalgam::memory
