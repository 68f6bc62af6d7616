#include "memory/dirty_bitmap.h"

#include "absl/strings/str_format.h"
#include "memory/guest_address.h"

namespace amalgam::memory {

DirtyBitmap::DirtyBitmap(uint64_t num_pages)
    : num_pages_(num_pages),
      num_words_(static_cast<size_t>((num_pages + 63) / 64)),
      words_(new std::atomic<uint64_t>[num_words_]) {
  for (size_t i = 0; i < num_words_; ++i) words_[i].store(0, std::memory_order_relaxed);
}

void DirtyBitmap::MarkPage(uint64_t page) {
  if (page >= num_pages_) return;
  words_[page / 64].fetch_or(uint64_t{1} << (page % 64), std::memory_order_relaxed);
}

void DirtyBitmap::MarkRange(uint64_t byte_offset, uint64_t len) {
  if (len == 0) return;
  uint64_t first = byte_offset / kPageSize;
  if (first >= num_pages_) return;
  // The last byte, saturating instead of wrapping past 2^64.
  uint64_t last_byte = len - 1 > UINT64_MAX - byte_offset ? UINT64_MAX : byte_offset + len - 1;
  uint64_t last = last_byte / kPageSize;
  if (last >= num_pages_) last = num_pages_ - 1;
  for (uint64_t p = first; p <= last; ++p) MarkPage(p);
}

absl::Status DirtyBitmap::Absorb(absl::Span<const uint64_t> words) {
  if (words.size() != num_words_) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "dirty log has %u words, the region's bitmap has %u (%u pages): wrong slot?", words.size(),
        num_words_, num_pages_));
  }
  for (size_t i = 0; i < num_words_; ++i) {
    uint64_t w = words[i];
    if (i == num_words_ - 1 && num_pages_ % 64 != 0) w &= (uint64_t{1} << (num_pages_ % 64)) - 1;
    if (w != 0) words_[i].fetch_or(w, std::memory_order_relaxed);
  }
  return absl::OkStatus();
}

bool DirtyBitmap::IsDirty(uint64_t page) const {
  if (page >= num_pages_) return false;
  return (words_[page / 64].load(std::memory_order_relaxed) >> (page % 64)) & 1;
}

uint64_t DirtyBitmap::CountDirty() const {
  uint64_t n = 0;
  for (size_t i = 0; i < num_words_; ++i) {
    n += static_cast<uint64_t>(__builtin_popcountll(words_[i].load(std::memory_order_relaxed)));
  }
  return n;
}

std::vector<uint64_t> DirtyBitmap::DirtyPages() const {
  std::vector<uint64_t> pages;
  for (size_t i = 0; i < num_words_; ++i) {
    uint64_t w = words_[i].load(std::memory_order_relaxed);
    while (w != 0) {
      int bit = __builtin_ctzll(w);
      pages.push_back(i * 64 + static_cast<uint64_t>(bit));
      w &= w - 1;
    }
  }
  return pages;
}

std::vector<uint64_t> DirtyBitmap::TakeWords() {
  std::vector<uint64_t> out(num_words_);
  for (size_t i = 0; i < num_words_; ++i) {
    out[i] = words_[i].exchange(0, std::memory_order_acq_rel);
  }
  return out;
}

void DirtyBitmap::Clear() {
  for (size_t i = 0; i < num_words_; ++i) words_[i].store(0, std::memory_order_relaxed);
}

}  // namespace amalgam::memory
