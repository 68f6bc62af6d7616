#include "vmm/api/config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/json_util.h"

namespace amalgam::vmm::api {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view problem, absl::string_view fix) {
  return absl::InvalidArgumentError(
      absl::StrCat("config field \"", field, "\" ", problem, ": ", fix));
}

// A path the VMM will open later must exist and be readable now, so the user learns it at Create
// rather than from a half-built VM.
absl::Status CheckReadableFile(absl::string_view field, const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return Invalid(
        field, absl::StrCat("is \"", path, "\", which cannot be used (", std::strerror(errno), ")"),
        "fix the path");
  }
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    return Invalid(field, absl::StrCat("is \"", path, "\", which is not a regular file"),
                   "point it at a file");
  }
  if (access(path.c_str(), R_OK) != 0) {
    return Invalid(
        field,
        absl::StrCat("is \"", path, "\", which is not readable (", std::strerror(errno), ")"),
        "fix its permissions");
  }
  return absl::OkStatus();
}

bool IsValidMac(absl::string_view mac) {
  std::vector<absl::string_view> parts = absl::StrSplit(mac, ':');
  if (parts.size() != 6) return false;
  for (absl::string_view p : parts) {
    if (p.size() != 2 || !absl::ascii_isxdigit(p[0]) || !absl::ascii_isxdigit(p[1])) return false;
  }
  return true;
}

bool IsValidTemplateName(absl::string_view name) {
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_') return false;
  }
  return true;
}

absl::Status ValidateDevices(const v1::VmConfig& config) {
  std::set<std::string> ids;
  for (int i = 0; i < config.devices_size(); ++i) {
    const v1::DeviceConfig& d = config.devices(i);
    const std::string f = absl::StrCat("devices[", i, "]");
    if (d.id().empty()) return Invalid(f + ".id", "is empty", "give every device a unique id");
    if (!ids.insert(d.id()).second) {
      return Invalid(f + ".id", absl::StrCat("repeats \"", d.id(), "\""),
                     "give every device a unique id");
    }
    switch (d.kind_case()) {
      case v1::DeviceConfig::kBlock:
        if (d.block().path().empty()) {
          return Invalid(f + ".block.path", "is empty", "set it to a disk image file");
        }
        if (absl::Status s = CheckReadableFile(f + ".block.path", d.block().path()); !s.ok()) {
          return s;
        }
        break;
      case v1::DeviceConfig::kNet:
        if (d.net().tap().empty() || d.net().tap().size() > 15) {
          return Invalid(f + ".net.tap", absl::StrCat("is \"", d.net().tap(), "\""),
                         "set it to a tap interface name of 1 to 15 characters");
        }
        if (!d.net().mac().empty() && !IsValidMac(d.net().mac())) {
          return Invalid(f + ".net.mac", absl::StrCat("is \"", d.net().mac(), "\""),
                         "write it as aa:bb:cc:dd:ee:ff or leave it empty");
        }
        break;
      case v1::DeviceConfig::kConsole:
      case v1::DeviceConfig::kRng:
        break;
      case v1::DeviceConfig::KIND_NOT_SET:
        return Invalid(f, "has no kind", "add one of \"block\", \"net\", \"console\", \"rng\"");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateCluster(const v1::VmConfig& config) {
  if (!config.has_cluster()) return absl::OkStatus();
  const v1::ClusterConfig& c = config.cluster();
  if (c.nodes().empty()) {
    return Invalid("cluster.nodes", "is empty", "list every node, or drop the cluster section");
  }
  const std::string& t = c.transport();
  if (!t.empty() && t != "tcp" && t != "dpdk" && t != "inproc") {
    return Invalid("cluster.transport", absl::StrCat("is \"", t, "\""),
                   "use \"tcp\", \"dpdk\" or \"inproc\"");
  }
  std::set<uint32_t> node_ids;
  std::set<uint32_t> placed_vcpus;
  uint64_t memory_sum = 0;
  for (int i = 0; i < c.nodes_size(); ++i) {
    const v1::NodeConfig& n = c.nodes(i);
    const std::string f = absl::StrCat("cluster.nodes[", i, "]");
    if (!node_ids.insert(n.id()).second) {
      return Invalid(f + ".id", absl::StrCat("repeats node id ", n.id()),
                     "give every node a unique id");
    }
    if (n.address().empty() && c.transport() != "inproc") {
      return Invalid(f + ".address", "is empty", "set it to the node's fabric host:port");
    }
    for (uint32_t v : n.vcpus()) {
      if (v >= config.vcpus()) {
        return Invalid(f + ".vcpus",
                       absl::StrCat("names vCPU ", v, " but the VM has ", config.vcpus(), " vCPUs"),
                       absl::StrCat("use indexes 0 to ", config.vcpus() - 1));
      }
      if (!placed_vcpus.insert(v).second) {
        return Invalid(f + ".vcpus", absl::StrCat("places vCPU ", v, " a second time"),
                       "list each vCPU on exactly one node");
      }
    }
    memory_sum += n.memory_mib();
  }
  if (!node_ids.count(c.node_id())) {
    return Invalid("cluster.node_id", absl::StrCat("is ", c.node_id(), ", which is not in nodes"),
                   "set it to this node's id from cluster.nodes");
  }
  if (memory_sum != 0 && memory_sum != config.memory_mib()) {
    return Invalid(
        "cluster.nodes[].memory_mib",
        absl::StrCat("adds up to ", memory_sum, " MiB but memory_mib is ", config.memory_mib()),
        "make the per-node amounts add up to memory_mib, or leave them all 0");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::VmConfig> ParseVmConfigJson(absl::string_view json) {
  v1::VmConfig config;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;  // A misspelt field must not silently vanish.
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &config, options);
  if (!status.ok()) {
    // protobuf's message may span lines (it draws a caret under the JSON); errors are one line.
    std::string why(status.message());
    why = absl::StrReplaceAll(why, {{"\n", " "}, {"\r", " "}});
    while (!why.empty() && why.back() == ' ') why.pop_back();
    return absl::InvalidArgumentError(
        absl::StrCat("config is not a valid VmConfig in JSON: ", why,
                     " (field names are those of VmConfig in vmm/api/amalgam.proto, in "
                     "snake_case or lowerCamelCase)"));
  }
  return config;
}

absl::StatusOr<v1::VmConfig> LoadVmConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot open config file \"", path, "\": ",
                                            std::strerror(errno), "; fix the --config path"));
  }
  std::stringstream buf;
  buf << in.rdbuf();
  absl::StatusOr<v1::VmConfig> config = ParseVmConfigJson(buf.str());
  if (!config.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config file \"", path, "\": ", config.status().message()));
  }
  return config;
}

std::string VmConfigToJson(const v1::VmConfig& config) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(config, &out, options);
  return out;
}

absl::Status ValidateVmConfig(const v1::VmConfig& config) {
  if (config.vcpus() == 0 || config.vcpus() > kMaxVcpus) {
    return Invalid("vcpus", absl::StrCat("is ", config.vcpus()),
                   absl::StrCat("set it to a number from 1 to ", kMaxVcpus));
  }
  if (config.memory_mib() == 0 || config.memory_mib() > kMaxMemoryMib) {
    return Invalid("memory_mib", absl::StrCat("is ", config.memory_mib()),
                   absl::StrCat("set it to the guest RAM in MiB, from 1 to ", kMaxMemoryMib));
  }
  if (config.boot().kernel().empty()) {
    return Invalid("boot.kernel", "is empty",
                   "set it to the path of a PVH ELF (vmlinux) or bzImage kernel");
  }
  if (absl::Status s = CheckReadableFile("boot.kernel", config.boot().kernel()); !s.ok()) return s;
  if (!config.boot().initrd().empty()) {
    if (absl::Status s = CheckReadableFile("boot.initrd", config.boot().initrd()); !s.ok()) {
      return s;
    }
  }
  if (config.boot().cmdline().size() > kMaxCmdlineBytes) {
    return Invalid("boot.cmdline", absl::StrCat("is ", config.boot().cmdline().size(), " bytes"),
                   absl::StrCat("shorten it to at most ", kMaxCmdlineBytes, " bytes"));
  }
  if (config.boot().cmdline().find('\0') != std::string::npos) {
    return Invalid("boot.cmdline", "contains a NUL byte", "remove it");
  }
  if (!IsValidTemplateName(config.cpu_template())) {
    return Invalid("cpu_template", absl::StrCat("is \"", config.cpu_template(), "\""),
                   "use a template name made of letters, digits, '-' and '_', or \"\"");
  }
  if (absl::Status s = ValidateDevices(config); !s.ok()) return s;
  return ValidateCluster(config);
}

}  // namespace amalgam::vmm::api
