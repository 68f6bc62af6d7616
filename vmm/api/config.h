// Loading and validating VmConfig: the JSON `--config` file and the body of Lifecycle.Create.
// Pure functions; thread-safe.
#ifndef AMALGAM_VMM_API_CONFIG_H_
#define AMALGAM_VMM_API_CONFIG_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "vmm/api/amalgam.pb.h"

namespace amalgam::vmm::api {

// Limits a config must respect. 254: the highest xAPIC ID the guest can address is 254.
inline constexpr uint32_t kMaxVcpus = 254;
// 1 TiB: anything larger is a typo (a byte count where MiB were meant), not a plan.
inline constexpr uint64_t kMaxMemoryMib = uint64_t{1} << 20;
// x86 Linux's COMMAND_LINE_SIZE, including the terminating NUL.
inline constexpr size_t kMaxCmdlineBytes = 2047;

// Parses protobuf's JSON mapping of VmConfig. Unknown fields and malformed JSON are
// INVALID_ARGUMENT naming the problem. Does not validate values (see ValidateVmConfig).
absl::StatusOr<v1::VmConfig> ParseVmConfigJson(absl::string_view json);

// Reads `path` and parses it as above; errors name the file.
absl::StatusOr<v1::VmConfig> LoadVmConfigFile(const std::string& path);

// Renders a config as JSON (snake_case names, as ParseVmConfigJson accepts).
std::string VmConfigToJson(const v1::VmConfig& config);

// Checks every value (counts, sizes, paths that must exist, unique device ids, the cluster
// section). Returns INVALID_ARGUMENT whose message names the field and says what to fix.
absl::Status ValidateVmConfig(const v1::VmConfig& config);

}  // namespace amalgam::vmm::api

#endif  // AMALGAM_VMM_API_CONFIG_H_
