// ControlPlane as `amalgam --api-socket` uses it: real VM (the test guest), real socket.
#include "vmm/api/control_plane.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "vmm/api/amalgam.grpc.pb.h"
#include "vmm/api/temp_dir_testutil.h"

namespace amalgam::vmm::api {
namespace {

using testing::TempDir;

std::string WriteConfig(const TempDir& dir, const std::string& cmdline) {
  const std::string path = dir.path + "/vm.json";
  std::ofstream(path) << R"({"vcpus": 1, "memory_mib": 64, "boot": {"kernel": )"
                      << R"("guest/test_guest.elf", "cmdline": ")" << cmdline
                      << R"("}, "serial_output": ")" << dir.path << R"(/serial.log"})";
  return path;
}

TEST_CASE("control plane: --config boots the VM and reports the guest's exit") {
  TempDir dir;
  ControlPlaneOptions o;
  o.server.unix_socket = dir.path + "/api.sock";
  o.config_file = WriteConfig(dir, "hello");
  auto cp = ControlPlane::Start(o);
  INFO(cp.status().ToString());
  REQUIRE(cp.ok());
  const ExitOutcome outcome = (*cp)->WaitForVmExit();
  CHECK(outcome.kind == ExitKind::kDebugExit);
  CHECK(outcome.debug_exit_value == 0);
  CHECK(ExitStatusFor(outcome) == 1);
  // The API still answers after the VM ended.
  auto info = v1::Info::NewStub(
      grpc::CreateChannel("unix:" + o.server.unix_socket, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  v1::VmInfo vi;
  REQUIRE(info->GetInfo(&ctx, v1::InfoRequest(), &vi).ok());
  CHECK(vi.state() == v1::VM_STATE_STOPPED);
  CHECK(vi.exit().reason() == v1::VmExit::REASON_GUEST_SHUTDOWN);
  cp->reset();
  CHECK(access(o.server.unix_socket.c_str(), F_OK) != 0);
}

TEST_CASE("control plane: a client's Shutdown ends WaitForVmExit") {
  TempDir dir;
  ControlPlaneOptions o;
  o.server.unix_socket = dir.path + "/api.sock";
  o.config_file = WriteConfig(dir, "smp cpus=1 iters=999999999999");
  auto cp = ControlPlane::Start(o);
  REQUIRE(cp.ok());
  bool client_ok = false;  // Catch2 asserts only on the main thread.
  std::thread client([&] {
    auto life = v1::Lifecycle::NewStub(
        grpc::CreateChannel("unix:" + o.server.unix_socket, grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    v1::ShutdownResponse r;
    client_ok = life->Shutdown(&ctx, v1::ShutdownRequest(), &r).ok();
  });
  const ExitOutcome outcome = (*cp)->WaitForVmExit();
  client.join();
  CHECK(client_ok);
  CHECK(outcome.kind == ExitKind::kStopped);
  CHECK(ExitStatusFor(outcome) == 0);
}

TEST_CASE("control plane: Stop (a signal) ends it with or without a VM") {
  TempDir dir;
  ControlPlaneOptions o;
  o.server.unix_socket = dir.path + "/api.sock";
  {
    auto cp = ControlPlane::Start(o);  // No --config: waits for a client to create the VM.
    REQUIRE(cp.ok());
    std::thread sig([&] { (*cp)->Stop("received SIGTERM"); });
    const ExitOutcome outcome = (*cp)->WaitForVmExit();
    sig.join();
    CHECK(outcome.kind == ExitKind::kStopped);
    CHECK(outcome.detail == "received SIGTERM");
  }
  o.config_file = WriteConfig(dir, "smp cpus=1 iters=999999999999");
  auto cp = ControlPlane::Start(o);
  REQUIRE(cp.ok());
  (*cp)->Stop("received SIGINT");
  const ExitOutcome outcome = (*cp)->WaitForVmExit();
  CHECK(outcome.kind == ExitKind::kStopped);
  CHECK(outcome.detail == "received SIGINT");
}

TEST_CASE("control plane: a bad config file fails before any socket exists") {
  TempDir dir;
  ControlPlaneOptions o;
  o.server.unix_socket = dir.path + "/api.sock";
  o.config_file = dir.path + "/vm.json";
  std::ofstream(o.config_file) << R"({"vcpus": 1, "memory_mib": 64, "kernal": "x"})";
  auto cp = ControlPlane::Start(o);
  REQUIRE(cp.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(cp.status().message().find("kernal") != absl::string_view::npos);
  CHECK(access(o.server.unix_socket.c_str(), F_OK) != 0);

  std::ofstream(o.config_file) << R"({"vcpus": 1, "memory_mib": 64})";
  cp = ControlPlane::Start(o);
  REQUIRE(cp.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(cp.status().message().find("boot.kernel") != absl::string_view::npos);
  CHECK(access(o.server.unix_socket.c_str(), F_OK) != 0);
}

}  // namespace
}  // namespace amalgam::vmm::api
