#include "vmm/api/format.h"

#include <algorithm>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/json_util.h"

namespace amalgam::vmm::api {
namespace {

const char* StateText(v1::VmState s) {
  switch (s) {
    case v1::VM_STATE_NOT_CREATED:
      return "not created";
    case v1::VM_STATE_CREATED:
      return "created";
    case v1::VM_STATE_RUNNING:
      return "running";
    case v1::VM_STATE_PAUSED:
      return "paused";
    case v1::VM_STATE_STOPPED:
      return "stopped";
    default:
      return "unknown";
  }
}

const char* RunStateText(v1::VcpuRunState s) {
  switch (s) {
    case v1::VCPU_RUN_STATE_CREATED:
      return "created";
    case v1::VCPU_RUN_STATE_RUNNING:
      return "running";
    case v1::VCPU_RUN_STATE_PAUSED:
      return "paused";
    case v1::VCPU_RUN_STATE_HALTED:
      return "halted";
    case v1::VCPU_RUN_STATE_STOPPED:
      return "stopped";
    case v1::VCPU_RUN_STATE_REMOTE:
      return "remote";
    default:
      return "unknown";
  }
}

std::string Bytes(uint64_t b) {
  if (b >= (uint64_t{1} << 30) && b % (uint64_t{1} << 30) == 0) {
    return absl::StrCat(b >> 30, " GiB");
  }
  if (b >= (uint64_t{1} << 20) && b % (uint64_t{1} << 20) == 0) {
    return absl::StrCat(b >> 20, " MiB");
  }
  if (b >= (uint64_t{1} << 20)) return absl::StrFormat("%.1f MiB", b / double(1 << 20));
  return absl::StrCat(b, " B");
}

}  // namespace

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = true;
  o.preserve_proto_field_names = true;
  o.always_print_primitive_fields = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out, o);
  return out;
}

std::string FormatExit(const v1::VmExit& exit) {
  std::string out;
  switch (exit.reason()) {
    case v1::VmExit::REASON_GUEST_SHUTDOWN:
      out = absl::StrCat("guest shutdown, exit code ", exit.exit_code());
      break;
    case v1::VmExit::REASON_USER_SHUTDOWN:
      out = "shut down by the API";
      break;
    case v1::VmExit::REASON_ERROR:
      out = "stopped by an error";
      break;
    default:
      out = "unknown reason";
      break;
  }
  if (!exit.detail().empty()) absl::StrAppend(&out, " (", exit.detail(), ")");
  return out;
}

std::string FormatInfo(const v1::VmInfo& info) {
  std::string out = absl::StrCat("state:   ", StateText(info.state()));
  if (info.uptime_ms() > 0) {
    absl::StrAppendFormat(&out, " (up %.1f s)", info.uptime_ms() / 1000.0);
  }
  out += "\n";
  if (info.state() == v1::VM_STATE_NOT_CREATED) return out;
  const v1::VmConfig& c = info.config();
  absl::StrAppend(&out, "config:  ", c.vcpus(), " vCPUs, ", c.memory_mib(), " MiB, kernel ",
                  c.boot().kernel());
  if (!c.boot().cmdline().empty()) absl::StrAppend(&out, ", cmdline \"", c.boot().cmdline(), "\"");
  if (!c.cpu_template().empty()) absl::StrAppend(&out, ", template ", c.cpu_template());
  out += "\n";
  if (info.has_exit()) absl::StrAppend(&out, "exit:    ", FormatExit(info.exit()), "\n");
  if (info.vcpus_size() > 0) {
    absl::StrAppendFormat(&out, "\n%-6s %-6s %-9s %-12s %-8s %s\n", "vCPU", "node", "state",
                          "exits", "host-cpu", "host-tid");
    for (const v1::VcpuInfo& v : info.vcpus()) {
      absl::StrAppendFormat(&out, "%-6u %-6u %-9s %-12u %-8s %s\n", v.index(), v.node_id(),
                            RunStateText(v.run_state()), v.exits(),
                            v.host_cpu() >= 0 ? absl::StrCat(v.host_cpu()) : "-",
                            v.host_thread_id() > 0 ? absl::StrCat(v.host_thread_id()) : "-");
    }
  }
  if (info.memory_size() > 0) {
    absl::StrAppendFormat(&out, "\n%-6s %-12s %s\n", "node", "home", "resident pages");
    for (const v1::NodeMemoryInfo& m : info.memory()) {
      absl::StrAppendFormat(&out, "%-6u %-12s %u\n", m.node_id(), Bytes(m.home_bytes()),
                            m.resident_pages());
    }
  }
  if (info.devices_size() > 0) {
    absl::StrAppendFormat(&out, "\n%-12s %-16s %s\n", "device", "kind", "detail");
    for (const v1::DeviceInfo& d : info.devices()) {
      absl::StrAppendFormat(&out, "%-12s %-16s %s\n", d.id(), d.kind(), d.detail());
    }
  }
  return out;
}

std::string FormatMetrics(const v1::MetricsResponse& metrics) {
  std::vector<std::pair<std::string, double>> rows;
  size_t width = 0;
  for (const v1::Metric& m : metrics.metrics()) {
    std::map<std::string, std::string> labels(m.labels().begin(), m.labels().end());
    std::string name = m.name();
    if (!labels.empty()) {
      name += "{" +
              absl::StrJoin(labels, ",",
                            [](std::string* o, const auto& kv) {
                              absl::StrAppend(o, kv.first, "=", kv.second);
                            }) +
              "}";
    }
    width = std::max(width, name.size());
    rows.emplace_back(std::move(name), m.value());
  }
  std::sort(rows.begin(), rows.end());
  std::string out;
  for (const auto& [name, value] : rows) {
    absl::StrAppendFormat(&out, "%-*s  %.15g\n", static_cast<int>(width), name, value);
  }
  return out;
}

}  // namespace amalgam::vmm::api
