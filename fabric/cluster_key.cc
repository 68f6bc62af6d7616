#include "fabric/cluster_key.h"

#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "fabric/frame_mac.h"

namespace amalgam::fabric {
namespace {

// libsodium must be initialised once before randombytes/generichash are used.
void EnsureSodium() {
  static const bool ok = sodium_init() >= 0;
  (void)ok;
}

// v2: session keys key AES-256-GMAC (wire version 2) instead of ChaCha20-Poly1305.
constexpr char kSessionLabel[] = "amalgam-fabric-session-v2";

}  // namespace

FrameKey::FrameKey(const std::array<uint8_t, kKeySize>& bytes)
    : bytes_(bytes), mac_key_(FrameMacKey::Expand(bytes)) {}

void RandomBytes(absl::Span<uint8_t> out) {
  EnsureSodium();
  randombytes_buf(out.data(), out.size());
}

absl::StatusOr<FrameKey> FrameKey::FromHex(absl::string_view hex) {
  hex = absl::StripAsciiWhitespace(hex);
  if (hex.size() != 2 * kKeySize) {
    return absl::InvalidArgumentError(absl::StrCat("cluster key: expected ", 2 * kKeySize,
                                                   " hex digits, got ", hex.size(),
                                                   " characters; generate one with --gen-key"));
  }
  for (char c : hex) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError("cluster key: not a hex digit in the key");
    }
  }
  std::string raw = absl::HexStringToBytes(hex);
  std::array<uint8_t, kKeySize> bytes;
  std::memcpy(bytes.data(), raw.data(), kKeySize);
  return FrameKey(bytes);
}

absl::StatusOr<FrameKey> FrameKey::FromFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(absl::StrCat("cluster key file ", path, ": ", std::strerror(errno)));
  }
  std::string data;
  char buf[256];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    data.append(buf, n);
    if (data.size() > 4096) break;
  }
  ::close(fd);
  if (data.size() == kKeySize) {
    std::array<uint8_t, kKeySize> bytes;
    std::memcpy(bytes.data(), data.data(), kKeySize);
    return FrameKey(bytes);
  }
  auto key = FromHex(data);
  if (!key.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("cluster key file ", path,
                                                   ": want 64 hex digits or 32 raw bytes (",
                                                   key.status().message(), ")"));
  }
  return key;
}

FrameKey FrameKey::Generate() {
  std::array<uint8_t, kKeySize> bytes;
  RandomBytes(absl::MakeSpan(bytes));
  return FrameKey(bytes);
}

absl::Status FrameKey::GenerateFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot create key file ", path, ": ", std::strerror(errno), " (it must not exist yet)"));
  }
  std::string text = Generate().ToHex() + "\n";
  ssize_t n = ::write(fd, text.data(), text.size());
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size())) {
    return absl::InternalError(absl::StrCat("short write to key file ", path));
  }
  return absl::OkStatus();
}

FrameKey FrameKey::DeriveSession(absl::Span<const uint8_t> nonce_lower_node,
                                 absl::Span<const uint8_t> nonce_higher_node) const {
  EnsureSodium();
  crypto_generichash_state st;
  crypto_generichash_init(&st, bytes_.data(), bytes_.size(), kKeySize);
  crypto_generichash_update(&st, reinterpret_cast<const uint8_t*>(kSessionLabel),
                            sizeof(kSessionLabel));
  crypto_generichash_update(&st, nonce_lower_node.data(), nonce_lower_node.size());
  crypto_generichash_update(&st, nonce_higher_node.data(), nonce_higher_node.size());
  std::array<uint8_t, kKeySize> out;
  crypto_generichash_final(&st, out.data(), out.size());
  return FrameKey(out);
}

std::string FrameKey::ToHex() const {
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes_.data()), bytes_.size()));
}

}  // namespace amalgam::fabric
