// A small client of the amalgam control API: creates a VM from a JSON config, starts it, waits
// for it to stop and prints why.
//
//   grpc_client SOCKET CONFIG.json
//
// Exit status: the guest's debug-exit code for a guest shutdown, 0 if stopped through the API,
// 1 if a call failed (the server's message says what to fix), 2 for bad usage.
#include <grpcpp/grpcpp.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "google/protobuf/util/json_util.h"
#include "vmm/api/amalgam.grpc.pb.h"

namespace v1 = amalgam::vmm::api::v1;

static int Failed(const char* what, const grpc::Status& s) {
  std::cerr << "grpc_client: " << what << " failed: " << s.error_message() << " (code "
            << s.error_code() << ")\n";
  return 1;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: grpc_client SOCKET CONFIG.json\n";
    return 2;
  }
  // The config file is VmConfig in protobuf's JSON mapping; the server validates the values.
  std::ifstream in(argv[2]);
  if (!in) {
    std::cerr << "grpc_client: cannot open " << argv[2] << "\n";
    return 2;
  }
  std::stringstream json;
  json << in.rdbuf();
  v1::VmConfig config;
  if (auto s = google::protobuf::util::JsonStringToMessage(json.str(), &config); !s.ok()) {
    std::cerr << "grpc_client: " << argv[2] << ": " << s.ToString() << "\n";
    return 2;
  }

  auto channel =
      grpc::CreateChannel(std::string("unix:") + argv[1], grpc::InsecureChannelCredentials());
  auto vm = v1::Lifecycle::NewStub(channel);
  {
    grpc::ClientContext ctx;
    v1::CreateResponse created;
    if (grpc::Status s = vm->Create(&ctx, config, &created); !s.ok()) return Failed("Create", s);
    std::cout << "created: " << created.info().config().vcpus() << " vCPUs, "
              << created.info().config().memory_mib() << " MiB\n";
  }
  {
    grpc::ClientContext ctx;
    v1::StartResponse started;
    if (grpc::Status s = vm->Start(&ctx, v1::StartRequest(), &started); !s.ok()) {
      return Failed("Start", s);
    }
    std::cout << "started\n";
  }
  grpc::ClientContext ctx;  // No deadline: a VM may run for a long time.
  v1::WaitResponse waited;
  if (grpc::Status s = vm->Wait(&ctx, v1::WaitRequest(), &waited); !s.ok()) {
    return Failed("Wait", s);
  }
  const v1::VmExit& exit = waited.exit();
  std::cout << "stopped: " << v1::VmExit::Reason_Name(exit.reason()) << " exit_code "
            << exit.exit_code() << (exit.detail().empty() ? "" : " (" + exit.detail() + ")")
            << "\n";
  return exit.reason() == v1::VmExit::REASON_GUEST_SHUTDOWN ? exit.exit_code() : 0;
}
