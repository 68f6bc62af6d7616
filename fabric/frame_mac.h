// The frame MAC of wire version 2: AES-256-GMAC, i.e. AES-256-GCM with an empty plaintext and the
// whole frame (header, body, payload) as additional data, a 96-bit nonce and a 128-bit tag.
// Chosen by measurement (bench/fabric_cost_bench): with AES-NI and PCLMULQDQ it tags a 4 KiB page
// frame in about 0.7 us here, against 1.2-1.3 us for wire version 1's ChaCha20-keyed Poly1305,
// 4.6 us for keyed BLAKE2b and 9-13 us for HMAC-SHA-2; on a small request frame 60 ns vs 220 ns.
// The expanded key (AES round keys, GHASH powers) is computed once per FrameKey, not per frame.
// Like Poly1305, GMAC is a secure MAC only while a nonce never repeats under one key: frame.cc
// draws nonces (random per-process prefix + counter); callers never choose them.
// Needs AES-NI + PCLMULQDQ (every x86-64 server CPU since 2010; libsodium 1.0.18 has no software
// AES-GCM): without them available() is false and EncodeFrame/VerifyFrame refuse with a message.
// Internal to //fabric:frame. Thread-safety: immutable after Expand, safe to share.
#ifndef AMALGAM_FABRIC_FRAME_MAC_H_
#define AMALGAM_FABRIC_FRAME_MAC_H_

#include <sodium.h>

#include <array>
#include <cstdint>
#include <memory>

#include "absl/types/span.h"

namespace amalgam::fabric {

inline constexpr size_t kMacNonceBytes = 12;
inline constexpr size_t kMacTagBytes = 16;

class FrameMacKey {
 public:
  static std::shared_ptr<const FrameMacKey> Expand(const std::array<uint8_t, 32>& key);

  // False when this CPU cannot run AES-256-GCM (no AES-NI/PCLMULQDQ).
  bool available() const { return available_; }
  // Tag over `data` (one contiguous frame without its trailer). Requires available().
  void Tag(const uint8_t nonce[kMacNonceBytes], absl::Span<const uint8_t> data,
           uint8_t tag[kMacTagBytes]) const;

  FrameMacKey() = default;
  ~FrameMacKey();

 private:
  bool available_ = false;
  crypto_aead_aes256gcm_state state_;  // CRYPTO_ALIGN(16); heap-allocated via aligned new
};

}  // namespace amalgam::fabric

#endif  // AMALGAM_FABRIC_FRAME_MAC_H_
