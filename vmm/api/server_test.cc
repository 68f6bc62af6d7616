// The control service over a real Unix socket with real gRPC channels: lifecycle, concurrent
// clients, clients that go away. The VM behind it is the in-process FakeBackend;
// vm_api_e2e_test runs the same calls against a real VM.
#include "vmm/api/server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdio>
#include <sstream>
#include <thread>

#include "vmm/api/server_test_util.h"

namespace amalgam::vmm::api {
namespace {

using namespace testing;  // NOLINT: test helpers only.

TEST_CASE("lifecycle over a real Unix socket") {
  TempDir dir;
  const std::string sock = dir.path + "/api.sock";
  Served s(sock);

  struct stat st;
  REQUIRE(stat(sock.c_str(), &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));
  CHECK((st.st_mode & 0777) == 0600);

  CHECK(GetInfo(s).state() == v1::VM_STATE_NOT_CREATED);
  grpc::Status early = Start(s);
  CHECK(early.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(early.error_message().find("create it first") != std::string::npos);

  v1::VmConfig bad = GoodConfig(dir.path);
  bad.set_memory_mib(0);
  grpc::Status invalid = Create(s, bad);
  CHECK(invalid.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(invalid.error_message().find("memory_mib") != std::string::npos);

  v1::CreateResponse created;
  REQUIRE(Create(s, GoodConfig(dir.path), &created).ok());
  CHECK(created.info().state() == v1::VM_STATE_CREATED);
  CHECK(created.info().config().vcpus() == 2);
  REQUIRE(Start(s).ok());
  CHECK(Start(s).error_code() == grpc::StatusCode::FAILED_PRECONDITION);

  // Pause stops the fake guest's progress; resume lets it continue.
  REQUIRE(Pause(s).ok());
  CHECK(GetInfo(s).state() == v1::VM_STATE_PAUSED);
  const uint64_t paused_at = s.fake->progress();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(s.fake->progress() == paused_at);
  CHECK(Pause(s).error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  REQUIRE(Resume(s).ok());
  for (int i = 0; i < 1000 && s.fake->progress() == paused_at; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK(s.fake->progress() > paused_at);

  v1::VmInfo info = GetInfo(s);
  CHECK(info.state() == v1::VM_STATE_RUNNING);
  CHECK(info.vcpus_size() == 2);
  CHECK(info.vcpus(1).run_state() == v1::VCPU_RUN_STATE_RUNNING);

  v1::MetricsResponse metrics;
  REQUIRE(Call<v1::MetricsRequest, v1::MetricsResponse>(*s.metrics, &v1::Metrics::Stub::GetMetrics,
                                                        &metrics)
              .ok());
  int start_failures = 0;
  for (const v1::Metric& m : metrics.metrics()) {
    if (m.name() == "amalgam_api_requests_total" && m.labels().at("method") == "Start" &&
        m.labels().at("code") == "FAILED_PRECONDITION") {
      start_failures = static_cast<int>(m.value());
    }
  }
  CHECK(start_failures == 2);

  v1::ShutdownResponse down;
  REQUIRE(Call<v1::ShutdownRequest, v1::ShutdownResponse>(*s.lifecycle,
                                                          &v1::Lifecycle::Stub::Shutdown, &down)
              .ok());
  CHECK(down.exit().reason() == v1::VmExit::REASON_USER_SHUTDOWN);
  CHECK(Resume(s).error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  v1::WaitResponse waited;
  REQUIRE(Call<v1::WaitRequest, v1::WaitResponse>(*s.lifecycle, &v1::Lifecycle::Stub::Wait, &waited)
              .ok());
  CHECK(waited.exit().reason() == v1::VmExit::REASON_USER_SHUTDOWN);

  s.server->Shutdown();
  CHECK(access(sock.c_str(), F_OK) != 0);  // The socket file is gone.
}

TEST_CASE("concurrent clients") {
  TempDir dir;
  Served s(dir.path + "/api.sock");
  REQUIRE(Create(s, GoodConfig(dir.path)).ok());

  // Eight clients, each on its own channel, race to start the VM: exactly one wins.
  std::atomic<int> ok{0}, precondition{0}, other{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back([&] {
      auto ch =
          grpc::CreateChannel("unix:" + dir.path + "/api.sock", grpc::InsecureChannelCredentials());
      auto lifecycle = v1::Lifecycle::NewStub(ch);
      auto info = v1::Info::NewStub(ch);
      grpc::Status st =
          Call<v1::StartRequest, v1::StartResponse>(*lifecycle, &v1::Lifecycle::Stub::Start);
      (st.ok()                                                    ? ok
       : st.error_code() == grpc::StatusCode::FAILED_PRECONDITION ? precondition
                                                                  : other)++;
      for (int j = 0; j < 20; ++j) {
        v1::VmInfo vi;
        if (!Call<v1::InfoRequest, v1::VmInfo>(*info, &v1::Info::Stub::GetInfo, &vi).ok()) other++;
      }
    });
  }
  for (auto& t : clients) t.join();
  CHECK(ok == 1);
  CHECK(precondition == 7);
  CHECK(other == 0);

  // Pause/resume from several clients at once: every call is OK or FAILED_PRECONDITION.
  std::atomic<int> bad{0};
  clients.clear();
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&, i] {
      for (int j = 0; j < 10; ++j) {
        grpc::Status st = (i + j) % 2 ? Pause(s) : Resume(s);
        if (!st.ok() && st.error_code() != grpc::StatusCode::FAILED_PRECONDITION) bad++;
      }
    });
  }
  for (auto& t : clients) t.join();
  CHECK(bad == 0);
  const v1::VmState state = GetInfo(s).state();
  CHECK((state == v1::VM_STATE_RUNNING || state == v1::VM_STATE_PAUSED));
}

// Count of Wait calls that ended with `code`, from the service's own metrics.
int WaitsEndedWith(VmController& c, const std::string& code) {
  for (const v1::Metric& m : c.Metrics()) {
    if (m.name() == "amalgam_api_requests_total" && m.labels().at("method") == "Wait" &&
        m.labels().at("code") == code) {
      return static_cast<int>(m.value());
    }
  }
  return 0;
}

TEST_CASE("a client that goes away mid-Wait does not hurt the server") {
  TempDir dir;
  const std::string sock = dir.path + "/api.sock";
  Served s(sock);
  REQUIRE(Create(s, GoodConfig(dir.path)).ok());
  REQUIRE(Start(s).ok());

  {
    // A Wait that the client cancels while the server blocks in it.
    auto ch = grpc::CreateChannel("unix:" + sock, grpc::InsecureChannelCredentials());
    auto stub = v1::Lifecycle::NewStub(ch);
    grpc::ClientContext ctx;
    v1::WaitRequest req;
    v1::WaitResponse resp;
    std::thread canceller([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      ctx.TryCancel();
    });
    grpc::Status st = stub->Wait(&ctx, req, &resp);
    canceller.join();
    CHECK(st.error_code() == grpc::StatusCode::CANCELLED);
  }
  // The server notices (IsCancelled) and ends its side of the call.
  for (int i = 0; i < 2000 && WaitsEndedWith(*s.controller, "CANCELLED") == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK(WaitsEndedWith(*s.controller, "CANCELLED") == 1);

  {
    // A raw connection that sends half an HTTP/2 preface and hangs up.
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", sock.c_str());
    REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    const char partial[] = "PRI * HTTP/2.0\r\n";
    REQUIRE(write(fd, partial, sizeof(partial) - 1) > 0);
    close(fd);
  }

  // Still serving, and the VM is untouched.
  REQUIRE(Pause(s).ok());
  REQUIRE(Resume(s).ok());
  CHECK(GetInfo(s).state() == v1::VM_STATE_RUNNING);

  // A Wait with its own timeout ends with DEADLINE_EXCEEDED; one that outlives the guest
  // gets the guest's exit.
  {
    grpc::ClientContext ctx;
    v1::WaitRequest req;
    req.set_timeout_ms(100);
    v1::WaitResponse resp;
    CHECK(s.lifecycle->Wait(&ctx, req, &resp).error_code() == grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  std::thread guest_exit([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    s.fake->GuestExit(3);
  });
  v1::WaitResponse waited;
  REQUIRE(Call<v1::WaitRequest, v1::WaitResponse>(*s.lifecycle, &v1::Lifecycle::Stub::Wait, &waited)
              .ok());
  guest_exit.join();
  CHECK(waited.exit().reason() == v1::VmExit::REASON_GUEST_SHUTDOWN);
  CHECK(waited.exit().exit_code() == 3);
  CHECK(GetInfo(s).state() == v1::VM_STATE_STOPPED);
}

}  // namespace
}  // namespace amalgam::vmm::api
