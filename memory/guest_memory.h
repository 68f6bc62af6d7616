// GuestMemory: guest RAM as a set of non-overlapping regions (memfd or anonymous; holes, e.g. the
// 32-bit PCI/MMIO hole below 4 GiB), and bounds-checked access to it.
//
// Ownership: GuestMemory owns the memfds and mappings; region host pointers stay valid for its
// lifetime. Thread-safety: the region layout is immutable after Create(), so lookups and
// Read/Write may be called from any thread; concurrent writes to the same bytes race exactly as
// guest stores do. Accessors never allocate or free guest memory (vm-memory's rule), so a
// distributed memory provider can sit behind the same regions.
#ifndef AMALGAM_MEMORY_GUEST_MEMORY_H_
#define AMALGAM_MEMORY_GUEST_MEMORY_H_

#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "memory/dirty_bitmap.h"
#include "memory/guest_address.h"

namespace amalgam::memory {

struct RegionSpec {
  GuestAddress start;
  uint64_t size = 0;  // bytes, a multiple of kPageSize
};

// One contiguous range of guest RAM: MAP_SHARED from the memfd, or private anonymous memory.
class GuestRegion {
 public:
  GuestAddress start() const { return start_; }
  uint64_t size() const { return size_; }
  // One past the last byte; never wraps (checked at creation).
  GuestAddress end() const { return GuestAddress(start_.value() + size_); }
  uint8_t* host_address() const { return host_; }
  int memfd() const { return memfd_; }  // -1 for Backing::kPrivateHugePages
  uint64_t memfd_offset() const { return memfd_offset_; }
  bool Contains(GuestAddress addr) const { return addr >= start_ && addr < end(); }

 private:
  friend class GuestMemory;
  GuestAddress start_;
  uint64_t size_ = 0;
  uint8_t* host_ = nullptr;
  int memfd_ = -1;
  uint64_t memfd_offset_ = 0;
};

class GuestMemory {
 public:
  // What backs guest RAM. Both are sparse: a huge guest costs only what it touches.
  enum class Backing {
    // One memfd, MAP_SHARED, 4 KiB pages (MADV_NOHUGEPAGE). memfd() can be mapped by another
    // process, and the userfaultfd PageFaultService needs exactly this (4 KiB faults, pread and
    // MADV_REMOVE on the memfd): distributed memory must use it.
    kSharedMemfd,
    // Private anonymous memory with MADV_HUGEPAGE, each region 2 MiB aligned, so transparent huge
    // pages back it where the host allows (transparent_hugepage/enabled = always or madvise):
    // one host fault per 2 MiB instead of per 4 KiB page (first touch of 64 MiB: 4-8x faster
    // here, see README.md). No memfd (memfd() is -1), so no PageFaultService on it.
    kPrivateHugePages,
  };
  struct Options {
    Backing backing = Backing::kSharedMemfd;
  };

  // Regions must be page aligned, non-empty, non-overlapping, and not wrap. Memory is reserved
  // lazily (mmap, nothing populated). Errors: INVALID_ARGUMENT for a bad layout,
  // RESOURCE_EXHAUSTED when the host cannot map it.
  static absl::StatusOr<std::unique_ptr<GuestMemory>> Create(std::vector<RegionSpec> regions,
                                                             Options options);
  // Backing::kSharedMemfd.
  static absl::StatusOr<std::unique_ptr<GuestMemory>> Create(std::vector<RegionSpec> regions);

  // The x86 layout for `ram_bytes` of RAM: below 3 GiB as one region, the rest from 4 GiB.
  static std::vector<RegionSpec> X86Layout(uint64_t ram_bytes);

  ~GuestMemory();
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  const std::vector<GuestRegion>& regions() const { return regions_; }
  Backing backing() const { return backing_; }
  uint64_t total_size() const;

  // The region holding addr, or nullptr.
  const GuestRegion* FindRegion(GuestAddress addr) const;
  // True when [addr, addr + len) lies inside one region (len 0 is valid at any mapped addr).
  bool IsValidRange(GuestAddress addr, uint64_t len) const;
  // Host pointer for [addr, addr + len); the range must lie in one region. OUT_OF_RANGE
  // otherwise. The pointer is valid as long as this GuestMemory.
  absl::StatusOr<uint8_t*> GetHostAddress(GuestAddress addr, uint64_t len) const;

  // Copies between guest RAM and a host buffer; the whole range must be valid (it may span
  // adjacent regions only if they are contiguous). OUT_OF_RANGE otherwise, nothing copied.
  // Write() marks the pages it touches dirty.
  absl::Status Read(GuestAddress addr, absl::Span<uint8_t> out) const;
  absl::Status Write(GuestAddress addr, absl::Span<const uint8_t> data);

  // Dirty tracking, one bitmap per region (index as in regions()). Writes through Write() are
  // recorded automatically; a caller writing through GetHostAddress() pointers calls MarkDirty;
  // KVM's dirty log for the slot backing region i is merged with AbsorbDirtyLog(i, words).
  DirtyBitmap& dirty_bitmap(size_t region_index) const { return *dirty_[region_index]; }
  // OUT_OF_RANGE unless [addr, addr + len) is valid guest RAM (it may span contiguous regions).
  absl::Status MarkDirty(GuestAddress addr, uint64_t len) const;
  absl::Status AbsorbDirtyLog(size_t region_index, absl::Span<const uint64_t> words) const;

  template <typename T>
  absl::StatusOr<T> ReadObj(GuestAddress addr) const {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    absl::Status s = Read(addr, absl::MakeSpan(reinterpret_cast<uint8_t*>(&value), sizeof(T)));
    if (!s.ok()) return s;
    return value;
  }
  template <typename T>
  absl::Status WriteObj(GuestAddress addr, const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    return Write(addr, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&value), sizeof(T)));
  }

 private:
  GuestMemory() = default;
  // Validates the whole range [addr, addr + len) and calls fn(region, offset_in_region, n) for
  // each piece in order. OUT_OF_RANGE (and no call) if any byte is not guest RAM.
  static absl::Status MapError(const RegionSpec& spec, int err);
  // Appends a mapped region (and its dirty bitmap); the destructor unmaps host.
  void AddRegion(const RegionSpec& spec, void* host, uint64_t memfd_offset);
  template <typename Fn>
  absl::Status ForEachPiece(GuestAddress addr, uint64_t len, const char* what, Fn fn) const;

  std::vector<GuestRegion> regions_;                 // sorted by start
  std::vector<std::unique_ptr<DirtyBitmap>> dirty_;  // parallel to regions_
  Backing backing_ = Backing::kSharedMemfd;
  int memfd_ = -1;  // kSharedMemfd: one memfd backs all regions, at increasing offsets
};

}  // namespace amalgam::memory

#endif  // AMALGAM_MEMORY_GUEST_MEMORY_H_
