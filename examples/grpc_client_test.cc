#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

#include "vmm/api/fake_backend.h"
#include "vmm/api/server.h"

namespace amalgam::vmm::api {
namespace {

TEST_CASE("grpc_client creates, starts and waits for a VM") {
  char tmpl[] = "/tmp/grpc-client-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  std::ofstream(dir + "/kernel") << "x";
  std::ofstream(dir + "/vm.json") << R"({"vcpus": 1, "memory_mib": 16, "boot": {"kernel": ")" << dir
                                  << R"(/kernel"}})";
  auto* fake = new FakeBackend();
  auto controller = std::make_shared<VmController>(std::unique_ptr<VmBackend>(fake));
  ApiServerOptions o;
  o.unix_socket = dir + "/api.sock";
  auto server = StartApiServer(o, controller);
  REQUIRE(server.ok());

  // The guest exits with code 5 once the client has started it and is waiting.
  std::thread guest([&] {
    while (controller->state() != v1::VM_STATE_RUNNING) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    fake->GuestExit(5);
  });
  const std::string cmd = "./examples/grpc_client " + o.unix_socket + " " + dir + "/vm.json";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[1024];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), p)) > 0;) out.append(buf, n);
  const int status = pclose(p);
  guest.join();
  INFO(out);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 5);
  CHECK(out.find("created: 1 vCPUs, 16 MiB") != std::string::npos);
  CHECK(out.find("stopped: REASON_GUEST_SHUTDOWN exit_code 5") != std::string::npos);

  // Creating again is a clear FAILED_PRECONDITION, and bad usage is exit 2.
  p = popen((cmd + " 2>&1").c_str(), "r");
  out.clear();
  for (size_t n; (n = fread(buf, 1, sizeof(buf), p)) > 0;) out.append(buf, n);
  CHECK(WEXITSTATUS(pclose(p)) == 1);
  CHECK(out.find("Create failed: cannot create the VM") != std::string::npos);
  CHECK(std::system("./examples/grpc_client 2>/dev/null") != 0);
  server->reset();
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace amalgam::vmm::api
