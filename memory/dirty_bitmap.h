// DirtyBitmap: one bit per 4 KiB page of one guest memory region, set by VMM-side writes and by
// absorbing KVM dirty-log words (KVM_GET_DIRTY_LOG layout: bit i of word w = page 64*w + i).
// Ownership: owns its words. Thread-safety: every method is thread-safe (atomic words);
// TakeWords() hands each dirty bit to exactly one caller.
#ifndef AMALGAM_MEMORY_DIRTY_BITMAP_H_
#define AMALGAM_MEMORY_DIRTY_BITMAP_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace amalgam::memory {

class DirtyBitmap {
 public:
  explicit DirtyBitmap(uint64_t num_pages);
  DirtyBitmap(const DirtyBitmap&) = delete;
  DirtyBitmap& operator=(const DirtyBitmap&) = delete;

  uint64_t num_pages() const { return num_pages_; }
  size_t num_words() const { return num_words_; }

  // Pages outside the bitmap are ignored (callers bounds-check addresses first).
  void MarkPage(uint64_t page);
  // Marks every page touched by [byte_offset, byte_offset + len) (len 0 marks nothing).
  void MarkRange(uint64_t byte_offset, uint64_t len);
  // ORs in a KVM dirty log. INVALID_ARGUMENT unless words.size() == num_words(); bits past
  // num_pages() are ignored.
  absl::Status Absorb(absl::Span<const uint64_t> words);

  bool IsDirty(uint64_t page) const;
  uint64_t CountDirty() const;
  // Dirty page indices in ascending order (a snapshot; does not clear).
  std::vector<uint64_t> DirtyPages() const;
  // Returns the words and clears them, word by word atomically.
  std::vector<uint64_t> TakeWords();
  void Clear();

 private:
  uint64_t num_pages_;
  size_t num_words_;
  std::unique_ptr<std::atomic<uint64_t>[]> words_;
};

}  // namespace amalgam::memory

#endif  // AMALGAM_MEMORY_DIRTY_BITMAP_H_
