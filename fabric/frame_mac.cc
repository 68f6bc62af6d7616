#include "fabric/frame_mac.h"

namespace amalgam::fabric {

std::shared_ptr<const FrameMacKey> FrameMacKey::Expand(const std::array<uint8_t, 32>& key) {
  static const bool sodium_ready = sodium_init() >= 0;
  auto mac = std::make_shared<FrameMacKey>();
  mac->available_ = sodium_ready && crypto_aead_aes256gcm_is_available() != 0;
  if (mac->available_) crypto_aead_aes256gcm_beforenm(&mac->state_, key.data());
  return mac;
}

FrameMacKey::~FrameMacKey() { sodium_memzero(&state_, sizeof(state_)); }

void FrameMacKey::Tag(const uint8_t nonce[kMacNonceBytes], absl::Span<const uint8_t> data,
                      uint8_t tag[kMacTagBytes]) const {
  // Empty plaintext: GCM then only authenticates the additional data (GMAC). libsodium wants a
  // non-null ciphertext pointer even for zero bytes.
  uint8_t unused[1];
  unsigned long long tag_len = 0;
  crypto_aead_aes256gcm_encrypt_detached_afternm(unused, tag, &tag_len, unused, 0, data.data(),
                                                 data.size(), nullptr, nonce, &state_);
}

}  // namespace amalgam::fabric
