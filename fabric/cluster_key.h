// FrameKey: a 32-byte secret that authenticates frames (AES-256-GMAC, see frame_mac.h; session
// keys are derived with keyed BLAKE2b). The cluster key (from a key file shared by all
// nodes) authenticates Hello frames; each link then uses a session key derived from the cluster key
// and both Hello nonces, so frames recorded on one connection never verify on another.
// Thread-safety: immutable value type, safe to share. Owns a copy of the key bytes.
#ifndef AMALGAM_FABRIC_CLUSTER_KEY_H_
#define AMALGAM_FABRIC_CLUSTER_KEY_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace amalgam::fabric {

inline constexpr size_t kKeySize = 32;
inline constexpr size_t kNonceSize = 32;

class FrameMacKey;  // the expanded MAC key (frame_mac.h)

class FrameKey {
 public:
  // Parses 64 hex digits (surrounding whitespace ignored).
  static absl::StatusOr<FrameKey> FromHex(absl::string_view hex);
  // Reads a key file: 64 hex digits (plus optional newline) or exactly 32 raw bytes.
  static absl::StatusOr<FrameKey> FromFile(const std::string& path);
  // A fresh random key (libsodium randombytes).
  static FrameKey Generate();
  // Writes a new random key as hex to `path` with mode 0600; fails if the file exists.
  static absl::Status GenerateFile(const std::string& path);
  static FrameKey FromBytes(const std::array<uint8_t, kKeySize>& bytes) { return FrameKey(bytes); }

  // Session key for the link between two nodes: BLAKE2b keyed with this key over a label, the
  // lower node id's nonce and then the higher one's (both sides derive the same key).
  FrameKey DeriveSession(absl::Span<const uint8_t> nonce_lower_node,
                         absl::Span<const uint8_t> nonce_higher_node) const;

  std::string ToHex() const;
  const std::array<uint8_t, kKeySize>& bytes() const { return bytes_; }
  // The key expanded for the frame MAC once, shared by copies (never null).
  const FrameMacKey& mac_key() const { return *mac_key_; }

 private:
  explicit FrameKey(const std::array<uint8_t, kKeySize>& bytes);
  std::array<uint8_t, kKeySize> bytes_;
  std::shared_ptr<const FrameMacKey> mac_key_;
};

// Fills `out` with cryptographically random bytes.
void RandomBytes(absl::Span<uint8_t> out);

}  // namespace amalgam::fabric

#endif  // AMALGAM_FABRIC_CLUSTER_KEY_H_
