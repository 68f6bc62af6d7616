// The server's endpoints: socket-path policy, the Prometheus HTTP endpoint, TLS-only TCP.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdio>
#include <sstream>
#include <thread>

#include "vmm/api/http_testutil.h"
#include "vmm/api/server.h"
#include "vmm/api/server_test_util.h"

namespace amalgam::vmm::api {
namespace {

using namespace testing;  // NOLINT: test helpers only.

TEST_CASE("a socket path that exists") {
  TempDir dir;
  auto controller = std::make_shared<VmController>(std::make_unique<FakeBackend>());
  ApiServerOptions o;

  SECTION("a regular file is refused and left alone") {
    o.unix_socket = dir.path + "/file";
    std::ofstream(o.unix_socket) << "precious";
    auto s = StartApiServer(o, controller);
    REQUIRE(s.status().code() == absl::StatusCode::kAlreadyExists);
    CHECK(s.status().message().find("not a socket") != absl::string_view::npos);
    std::ifstream in(o.unix_socket);
    std::string content;
    in >> content;
    CHECK(content == "precious");
  }
  SECTION("a live socket is refused") {
    Served first(dir.path + "/live.sock");
    o.unix_socket = dir.path + "/live.sock";
    auto s = StartApiServer(o, controller);
    REQUIRE(s.status().code() == absl::StatusCode::kAlreadyExists);
    CHECK(s.status().message().find("in use") != absl::string_view::npos);
    CHECK(GetInfo(first).state() == v1::VM_STATE_NOT_CREATED);  // First server unharmed.
  }
  SECTION("a stale socket is replaced") {
    o.unix_socket = dir.path + "/stale.sock";
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", o.unix_socket.c_str());
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    close(fd);  // Bound, never listened, file left behind: what a crashed server leaves.
    auto s = StartApiServer(o, controller);
    INFO(s.status().ToString());
    REQUIRE(s.ok());
  }
  SECTION("a path too long for a Unix socket") {
    o.unix_socket = dir.path + "/" + std::string(120, 'x');
    auto s = StartApiServer(o, controller);
    REQUIRE(s.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(s.status().message().find("shorter") != absl::string_view::npos);
  }
  SECTION("a directory that does not exist") {
    o.unix_socket = dir.path + "/no/such/dir/api.sock";
    auto s = StartApiServer(o, controller);
    REQUIRE_FALSE(s.ok());
    CHECK(s.status().message().find("directory") != absl::string_view::npos);
  }
}

TEST_CASE("Prometheus endpoint serves the same metrics as text") {
  TempDir dir;
  ApiServerOptions o;
  o.metrics_address = "127.0.0.1:0";
  Served s(dir.path + "/api.sock", o);
  REQUIRE(Create(s, GoodConfig(dir.path)).ok());
  REQUIRE(s.server->metrics_port() > 0);
  const std::string body = HttpGet(s.server->metrics_port(), "/metrics");
  INFO(body);
  CHECK(body.find("200 OK") != std::string::npos);
  CHECK(body.find("# TYPE amalgam_api_requests_total counter") != std::string::npos);
  CHECK(body.find("amalgam_api_requests_total{library=\"api\",code=\"OK\",method=\"Create\"} 1") !=
        std::string::npos);
  CHECK(body.find("amalgam_fake_progress_total") != std::string::npos);
  CHECK(body.find("amalgam_api_vm_state{library=\"api\",state=\"created\"} 1") !=
        std::string::npos);
}

TEST_CASE("a metrics address in use is a clear error") {
  TempDir dir;
  ApiServerOptions o;
  o.metrics_address = "127.0.0.1:0";
  Served first(dir.path + "/a.sock", o);
  ApiServerOptions clash;
  clash.unix_socket = dir.path + "/b.sock";
  clash.metrics_address = "127.0.0.1:" + std::to_string(first.server->metrics_port());
  auto s = StartApiServer(clash, first.controller);
  REQUIRE(s.status().code() == absl::StatusCode::kUnavailable);
  CHECK(s.status().message().find("metrics") != absl::string_view::npos);
  CHECK(access(clash.unix_socket.c_str(), F_OK) != 0);  // No socket left behind.
}

TEST_CASE("TCP requires TLS, and TLS works") {
  TempDir dir;
  auto controller = std::make_shared<VmController>(std::make_unique<FakeBackend>());
  ApiServerOptions o;
  o.tcp_address = "127.0.0.1:0";
  auto plain = StartApiServer(o, controller);
  REQUIRE(plain.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(plain.status().message().find("TLS") != absl::string_view::npos);

  o.tls_cert_file = dir.path + "/cert.pem";
  o.tls_key_file = dir.path + "/key.pem";
  auto missing = StartApiServer(o, controller);
  REQUIRE(missing.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(missing.status().message().find("cert.pem") != absl::string_view::npos);

  const std::string cmd =
      "/usr/bin/openssl req -x509 -newkey ec -pkeyopt "
      "ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost "
      "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " +
      o.tls_key_file + " -out " + o.tls_cert_file + " 2>/dev/null";
  REQUIRE(std::system(cmd.c_str()) == 0);
  auto tls = StartApiServer(o, controller);
  INFO(tls.status().ToString());
  REQUIRE(tls.ok());
  REQUIRE((*tls)->tcp_port() > 0);
  const std::string target = "127.0.0.1:" + std::to_string((*tls)->tcp_port());

  std::stringstream ca;
  ca << std::ifstream(o.tls_cert_file).rdbuf();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ca.str();
  auto info = v1::Info::NewStub(grpc::CreateChannel(target, grpc::SslCredentials(ssl)));
  v1::VmInfo vi;
  grpc::Status st = Call<v1::InfoRequest, v1::VmInfo>(*info, &v1::Info::Stub::GetInfo, &vi);
  INFO(st.error_message());
  REQUIRE(st.ok());
  CHECK(vi.state() == v1::VM_STATE_NOT_CREATED);

  // A plaintext client cannot talk to the TLS port.
  auto insecure =
      v1::Info::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  CHECK_FALSE(insecure->GetInfo(&ctx, v1::InfoRequest(), &vi).ok());
}

}  // namespace
}  // namespace amalgam::vmm::api
