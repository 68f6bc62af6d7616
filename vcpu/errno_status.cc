#include "vcpu/errno_status.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace amalgam::vcpu {

absl::Status ErrnoStatus(int err, absl::string_view what) {
  // absl::ErrnoToStatusCode maps EINVAL, ENOMEM, EEXIST, ... to canonical codes.
  return absl::Status(absl::ErrnoToStatusCode(err), absl::StrCat(what, ": ", std::strerror(err)));
}

}  // namespace amalgam::vcpu
