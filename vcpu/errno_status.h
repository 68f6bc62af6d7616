// Internal: turn an errno into an absl::Status with a canonical code and a message naming the call.
#ifndef AMALGAM_VCPU_ERRNO_STATUS_H_
#define AMALGAM_VCPU_ERRNO_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace amalgam::vcpu {

// e.g. ErrnoStatus(EINVAL, "KVM_SET_REGS") -> INVALID_ARGUMENT "KVM_SET_REGS: Invalid argument".
absl::Status ErrnoStatus(int err, absl::string_view what);

}  // namespace amalgam::vcpu

#endif  // AMALGAM_VCPU_ERRNO_STATUS_H_
