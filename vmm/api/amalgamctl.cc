// amalgamctl: command-line client of the amalgam control API (vmm/api/amalgam.proto).
// Exit status: 0 success, 1 the call failed (message on stderr, or JSON on stdout with --json),
// 2 usage error.
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "vmm/api/amalgam.grpc.pb.h"
#include "vmm/api/config.h"
#include "vmm/api/format.h"
#include "vmm/api/metrics_http.h"

ABSL_FLAG(std::string, socket, "", "Unix socket of the amalgam API (amalgam's --api-socket)");
ABSL_FLAG(std::string, address, "", "host:port of the API over TCP (needs --tls_ca)");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA that signed the server's certificate (TCP only)");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate, if the server requires one");
ABSL_FLAG(std::string, tls_key, "", "PEM client key, with --tls_cert");
ABSL_FLAG(bool, json, false, "print responses (and errors) as JSON instead of text");
ABSL_FLAG(std::string, config, "", "VmConfig JSON file for `create`");
ABSL_FLAG(bool, prometheus, false, "`metrics`: print the Prometheus text format");
ABSL_FLAG(double, timeout, 0, "seconds before a call gives up; 0 = 30 s, and no limit for wait");

namespace {

namespace v1 = amalgam::vmm::api::v1;
namespace api = amalgam::vmm::api;

constexpr char kUsage[] = R"(drive a running amalgam VM through its control API.

usage: amalgamctl (--socket PATH | --address HOST:PORT --tls_ca FILE) [--json] COMMAND

commands:
  create --config FILE   create the VM from a JSON VmConfig (see vmm/api/README.md)
  start                  start the created VM
  pause                  pause every vCPU
  resume                 resume a paused VM
  stop                   shut the VM down (it cannot be started again)
  wait                   block until the VM stops, print why (--timeout to give up)
  info                   state, vCPUs (node, run state, exits), memory per node, devices
  metrics                counters of every library (--prometheus for the text format)
  help                   this text

exit status: 0 ok, 1 the call failed (the message says why), 2 usage error.
)";

std::shared_ptr<grpc::Channel> Connect(std::string* error) {
  const std::string socket = absl::GetFlag(FLAGS_socket);
  const std::string address = absl::GetFlag(FLAGS_address);
  if (socket.empty() == address.empty()) {
    *error = "give exactly one of --socket PATH (amalgam's --api-socket) or --address HOST:PORT";
    return nullptr;
  }
  if (!socket.empty()) {
    struct stat st;
    if (stat(socket.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) {
      *error = absl::StrCat("no API socket at \"", socket,
                            "\": is amalgam running with --api-socket ", socket, "?");
      return nullptr;
    }
    return grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials());
  }
  if (absl::GetFlag(FLAGS_tls_ca).empty()) {
    *error = "the API over TCP is TLS only: give --tls_ca with the CA of the server's certificate";
    return nullptr;
  }
  grpc::SslCredentialsOptions ssl;
  for (auto [flag, out] : {std::pair{absl::GetFlag(FLAGS_tls_ca), &ssl.pem_root_certs},
                           std::pair{absl::GetFlag(FLAGS_tls_cert), &ssl.pem_cert_chain},
                           std::pair{absl::GetFlag(FLAGS_tls_key), &ssl.pem_private_key}}) {
    if (flag.empty()) continue;
    FILE* f = std::fopen(flag.c_str(), "r");
    if (f == nullptr) {
      *error = absl::StrCat("cannot read \"", flag, "\"; fix the --tls_* path");
      return nullptr;
    }
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof(buf), f)) > 0;) out->append(buf, n);
    std::fclose(f);
  }
  return grpc::CreateChannel(address, grpc::SslCredentials(ssl));
}

// Applies --timeout (default 30 s; `wait` defaults to no limit).
void SetDeadline(grpc::ClientContext* ctx, bool is_wait) {
  double seconds = absl::GetFlag(FLAGS_timeout);
  if (seconds <= 0 && is_wait) return;
  if (seconds <= 0) seconds = 30;
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)));
}

int Fail(const std::string& command, const grpc::Status& s) {
  static const char* kNames[] = {"OK",
                                 "CANCELLED",
                                 "UNKNOWN",
                                 "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED",
                                 "NOT_FOUND",
                                 "ALREADY_EXISTS",
                                 "PERMISSION_DENIED",
                                 "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION",
                                 "ABORTED",
                                 "OUT_OF_RANGE",
                                 "UNIMPLEMENTED",
                                 "INTERNAL",
                                 "UNAVAILABLE",
                                 "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  const int code = static_cast<int>(s.error_code());
  const char* name = code >= 0 && code < 17 ? kNames[code] : "UNKNOWN";
  std::string message = s.error_message();
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
    message += " (is amalgam running, and is this its API endpoint?)";
  }
  if (absl::GetFlag(FLAGS_json)) {
    // Built through protobuf's JSON writer would need a message type; escape by hand instead.
    std::string escaped;
    for (char c : message) {
      if (c == '"' || c == '\\') escaped += '\\';
      if (static_cast<unsigned char>(c) < 0x20) continue;
      escaped += c;
    }
    std::cout << "{\n \"error\": {\n  \"command\": \"" << command << "\",\n  \"code\": \"" << name
              << "\",\n  \"message\": \"" << escaped << "\"\n }\n}\n";
  } else {
    std::cerr << "amalgamctl: " << command << ": " << name << ": " << message << "\n";
  }
  return 1;
}

int Print(const google::protobuf::Message& m, const std::string& text) {
  std::cout << (absl::GetFlag(FLAGS_json) ? api::ToJson(m) + "\n" : text);
  return 0;
}

int Run(const std::string& command) {
  std::string error;
  std::shared_ptr<grpc::Channel> channel = Connect(&error);
  if (channel == nullptr) {
    std::cerr << "amalgamctl: " << error << "\n";
    return 2;
  }
  auto lifecycle = v1::Lifecycle::NewStub(channel);
  grpc::ClientContext ctx;
  SetDeadline(&ctx, command == "wait");

  if (command == "create") {
    const std::string path = absl::GetFlag(FLAGS_config);
    if (path.empty()) {
      std::cerr << "amalgamctl: create needs --config FILE (a JSON VmConfig)\n";
      return 2;
    }
    absl::StatusOr<v1::VmConfig> config = api::LoadVmConfigFile(path);
    if (!config.ok()) {
      return Fail(command, grpc::Status(static_cast<grpc::StatusCode>(config.status().code()),
                                        std::string(config.status().message())));
    }
    v1::CreateResponse resp;
    grpc::Status s = lifecycle->Create(&ctx, *config, &resp);
    return s.ok() ? Print(resp, "created\n" + api::FormatInfo(resp.info())) : Fail(command, s);
  }
  if (command == "start") {
    v1::StartResponse resp;
    grpc::Status s = lifecycle->Start(&ctx, v1::StartRequest(), &resp);
    return s.ok() ? Print(resp, "started\n") : Fail(command, s);
  }
  if (command == "pause") {
    v1::PauseResponse resp;
    grpc::Status s = lifecycle->Pause(&ctx, v1::PauseRequest(), &resp);
    return s.ok() ? Print(resp, "paused\n") : Fail(command, s);
  }
  if (command == "resume") {
    v1::ResumeResponse resp;
    grpc::Status s = lifecycle->Resume(&ctx, v1::ResumeRequest(), &resp);
    return s.ok() ? Print(resp, "resumed\n") : Fail(command, s);
  }
  if (command == "stop") {
    v1::ShutdownResponse resp;
    grpc::Status s = lifecycle->Shutdown(&ctx, v1::ShutdownRequest(), &resp);
    return s.ok() ? Print(resp, "stopped: " + api::FormatExit(resp.exit()) + "\n")
                  : Fail(command, s);
  }
  if (command == "wait") {
    v1::WaitResponse resp;
    grpc::Status s = lifecycle->Wait(&ctx, v1::WaitRequest(), &resp);
    return s.ok() ? Print(resp, "stopped: " + api::FormatExit(resp.exit()) + "\n")
                  : Fail(command, s);
  }
  if (command == "info") {
    v1::VmInfo resp;
    grpc::Status s = v1::Info::NewStub(channel)->GetInfo(&ctx, v1::InfoRequest(), &resp);
    return s.ok() ? Print(resp, api::FormatInfo(resp)) : Fail(command, s);
  }
  if (command == "metrics") {
    v1::MetricsResponse resp;
    grpc::Status s = v1::Metrics::NewStub(channel)->GetMetrics(&ctx, v1::MetricsRequest(), &resp);
    if (!s.ok()) return Fail(command, s);
    if (absl::GetFlag(FLAGS_prometheus)) {
      std::cout << api::ToPrometheusText({resp.metrics().begin(), resp.metrics().end()});
      return 0;
    }
    return Print(resp, api::FormatMetrics(resp));
  }
  std::cerr << "amalgamctl: unknown command \"" << command << "\"; run `amalgamctl help`\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() == 2 && std::string(args[1]) == "help") {
    std::cout << "amalgamctl: " << kUsage;
    return 0;
  }
  if (args.size() != 2) {
    std::cerr << "amalgamctl: " << kUsage;
    std::cerr << "\namalgamctl: give exactly one command (got " << args.size() - 1 << ")\n";
    return 2;
  }
  return Run(args[1]);
}
