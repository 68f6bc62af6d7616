// The control service over a real Unix socket (and TLS over TCP) with real gRPC channels. The VM
// behind it is the in-process FakeBackend; vm_api_e2e_test runs the same calls against a real VM.
#include "vmm/api/server.h"

#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "vmm/api/amalgam.grpc.pb.h"
#include "vmm/api/fake_backend.h"

namespace amalgam::vmm::api {
namespace {

// Unix socket paths are limited to 107 bytes; Bazel's TEST_TMPDIR can be longer.
struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/amalgam-api-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { std::system(("rm -rf " + path).c_str()); }
  std::string path;
};

v1::VmConfig GoodConfig(const std::string& dir) {
  std::ofstream(dir + "/kernel") << "x";
  v1::VmConfig c;
  c.set_vcpus(2);
  c.set_memory_mib(16);
  c.mutable_boot()->set_kernel(dir + "/kernel");
  return c;
}

struct Served {
  explicit Served(const std::string& socket, ApiServerOptions o = {}) {
    fake = new FakeBackend();
    controller = std::make_shared<VmController>(std::unique_ptr<VmBackend>(fake));
    o.unix_socket = socket;
    auto s = StartApiServer(o, controller);
    INFO(s.status().ToString());
    REQUIRE(s.ok());
    server = *std::move(s);
    channel = grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials());
    lifecycle = v1::Lifecycle::NewStub(channel);
    info = v1::Info::NewStub(channel);
    metrics = v1::Metrics::NewStub(channel);
  }
  FakeBackend* fake;
  std::shared_ptr<VmController> controller;
  std::unique_ptr<ApiServer> server;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::Lifecycle::Stub> lifecycle;
  std::unique_ptr<v1::Info::Stub> info;
  std::unique_ptr<v1::Metrics::Stub> metrics;
};

template <typename Req, typename Resp, typename Stub, typename Fn>
grpc::Status Call(Stub& stub, Fn fn, Resp* resp = nullptr) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  Req req;
  Resp local;
  return (stub.*fn)(&ctx, req, resp ? resp : &local);
}

grpc::Status Start(Served& s) {
  return Call<v1::StartRequest, v1::StartResponse>(*s.lifecycle, &v1::Lifecycle::Stub::Start);
}
grpc::Status Pause(Served& s) {
  return Call<v1::PauseRequest, v1::PauseResponse>(*s.lifecycle, &v1::Lifecycle::Stub::Pause);
}
grpc::Status Resume(Served& s) {
  return Call<v1::ResumeRequest, v1::ResumeResponse>(*s.lifecycle, &v1::Lifecycle::Stub::Resume);
}
v1::VmInfo GetInfo(Served& s) {
  v1::VmInfo info;
  REQUIRE(Call<v1::InfoRequest, v1::VmInfo>(*s.info, &v1::Info::Stub::GetInfo, &info).ok());
  return info;
}
grpc::Status Create(Served& s, const v1::VmConfig& c, v1::CreateResponse* resp = nullptr) {
  grpc::ClientContext ctx;
  v1::CreateResponse local;
  return s.lifecycle->Create(&ctx, c, resp ? resp : &local);
}

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

std::string HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n";
  REQUIRE(write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size()));
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) out.append(buf, n);
  close(fd);
  return out;
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
