// Fuzzes the config path that API clients and --config files reach: JSON parsing, validation and
// the JSON rendering (which must parse back to the same message).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "vmm/api/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string json(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<amalgam::vmm::api::v1::VmConfig> config =
      amalgam::vmm::api::ParseVmConfigJson(json);
  if (!config.ok()) return 0;
  (void)amalgam::vmm::api::ValidateVmConfig(*config);
  absl::StatusOr<amalgam::vmm::api::v1::VmConfig> again =
      amalgam::vmm::api::ParseVmConfigJson(amalgam::vmm::api::VmConfigToJson(*config));
  if (!again.ok() || again->SerializeAsString() != config->SerializeAsString()) std::abort();
  return 0;
}
