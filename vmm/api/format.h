// Human-readable and JSON renderings of API messages, for amalgamctl and examples.
// Pure functions; thread-safe.
#ifndef AMALGAM_VMM_API_FORMAT_H_
#define AMALGAM_VMM_API_FORMAT_H_

#include <string>

#include "google/protobuf/message.h"
#include "vmm/api/amalgam.pb.h"

namespace amalgam::vmm::api {

// Protobuf's JSON mapping with snake_case names, enums as names, default values included.
std::string ToJson(const google::protobuf::Message& message);

// Multi-line text: state, uptime, config summary, one row per vCPU, memory per node, devices,
// and the exit once stopped. Ends with a newline.
std::string FormatInfo(const v1::VmInfo& info);

// One line: "guest shutdown, exit code 0 (detail)".
std::string FormatExit(const v1::VmExit& exit);

// One row per metric, "name{labels}  value", sorted by name then labels. Ends with a newline.
std::string FormatMetrics(const v1::MetricsResponse& metrics);

}  // namespace amalgam::vmm::api

#endif  // AMALGAM_VMM_API_FORMAT_H_
