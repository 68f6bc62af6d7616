// Runs the real amalgamctl binary against a server on a real Unix socket (FakeBackend VM).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "vmm/api/config.h"
#include "vmm/api/fake_backend.h"
#include "vmm/api/server.h"

namespace amalgam::vmm::api {
namespace {

struct Result {
  int status;
  std::string out;
};

// Runs amalgamctl with `args`; stdout and stderr together in `out`.
Result Ctl(const std::string& args) {
  const std::string cmd = "./vmm/api/amalgamctl " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), p)) > 0;) out.append(buf, n);
  const int raw = pclose(p);
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, out};
}

bool Has(const Result& r, const std::string& text) { return r.out.find(text) != std::string::npos; }

struct Fixture {
  Fixture() {
    char tmpl[] = "/tmp/amalgamctl-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    std::ofstream(dir + "/kernel") << "x";
    controller = std::make_shared<VmController>(std::make_unique<FakeBackend>());
    ApiServerOptions o;
    o.unix_socket = dir + "/api.sock";
    auto s = StartApiServer(o, controller);
    REQUIRE(s.ok());
    server = *std::move(s);
    sock = "--socket " + o.unix_socket + " ";
  }
  ~Fixture() {
    server.reset();
    std::system(("rm -rf " + dir).c_str());
  }
  std::string dir, sock;
  std::shared_ptr<VmController> controller;
  std::unique_ptr<ApiServer> server;
};

TEST_CASE("amalgamctl drives the lifecycle with text and JSON output") {
  Fixture f;
  std::ofstream(f.dir + "/vm.json") << R"({"vcpus": 2, "memory_mib": 32,
      "boot": {"kernel": ")" << f.dir
                                    << R"(/kernel", "cmdline": "hello"}})";

  Result r = Ctl(f.sock + "info");
  CHECK(r.status == 0);
  CHECK(Has(r, "state:   not created"));

  r = Ctl(f.sock + "pause");
  CHECK(r.status == 1);
  CHECK(Has(r, "amalgamctl: pause: FAILED_PRECONDITION: cannot pause the VM: it is not created"));

  r = Ctl(f.sock + "--json pause");
  CHECK(r.status == 1);
  CHECK(Has(r, "\"code\": \"FAILED_PRECONDITION\""));

  r = Ctl(f.sock + "create --config " + f.dir + "/vm.json");
  INFO(r.out);
  REQUIRE(r.status == 0);
  CHECK(Has(r, "2 vCPUs, 32 MiB"));
  REQUIRE(Ctl(f.sock + "start").status == 0);
  r = Ctl(f.sock + "pause");
  CHECK(r.status == 0);
  CHECK(r.out == "paused\n");

  r = Ctl(f.sock + "info");
  CHECK(Has(r, "state:   paused"));
  CHECK(Has(r, "vCPU   node   state     exits"));
  r = Ctl(f.sock + "--json info");
  CHECK(Has(r, "\"state\": \"VM_STATE_PAUSED\""));
  CHECK(Has(r, "\"run_state\": \"VCPU_RUN_STATE_PAUSED\""));
  // --json output is the API's own JSON mapping: it parses back.
  REQUIRE(Ctl(f.sock + "resume").status == 0);

  r = Ctl(f.sock + "metrics");
  CHECK(r.status == 0);
  CHECK(Has(r, "amalgam_api_requests_total{code=OK,method=Pause}"));
  r = Ctl(f.sock + "metrics --prometheus");
  CHECK(Has(r, "# TYPE amalgam_api_requests_total counter"));

  r = Ctl(f.sock + "stop");
  CHECK(r.status == 0);
  CHECK(Has(r, "stopped: shut down by the API"));
  r = Ctl(f.sock + "wait");
  CHECK(r.status == 0);
  CHECK(Has(r, "stopped: shut down by the API"));
  r = Ctl(f.sock + "resume");
  CHECK(r.status == 1);
  CHECK(Has(r, "stopped"));
}

double MetricValue(VmController& c, const std::string& name, const std::string& label,
                   const std::string& value) {
  for (const v1::Metric& m : c.Metrics()) {
    if (m.name() != name) continue;
    if (label.empty() || (m.labels().count(label) && m.labels().at(label) == value)) {
      return m.value();
    }
  }
  return 0;
}

TEST_CASE("a client process killed mid-wait is let go by the server") {
  Fixture f;
  std::ofstream(f.dir + "/vm.json")
      << R"({"vcpus": 1, "memory_mib": 16, "boot": {"kernel": ")" << f.dir << R"(/kernel"}})";
  REQUIRE(Ctl(f.sock + "create --config " + f.dir + "/vm.json").status == 0);
  REQUIRE(Ctl(f.sock + "start").status == 0);
  const pid_t child = fork();
  if (child == 0) {
    execl("./vmm/api/amalgamctl", "amalgamctl", "--socket", (f.dir + "/api.sock").c_str(), "wait",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  REQUIRE(child > 0);
  // Once the server holds the child's Wait, kill the child: its connection just drops.
  bool held = false;
  for (int i = 0; i < 3000 && !held; ++i) {
    held = MetricValue(*f.controller, "amalgam_api_waiters", "", "") == 1;
    if (!held) usleep(10000);
  }
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  REQUIRE(held);
  CHECK(WIFSIGNALED(status));
  bool released = false;
  for (int i = 0; i < 3000 && !released; ++i) {
    released = MetricValue(*f.controller, "amalgam_api_waiters", "", "") == 0 &&
               MetricValue(*f.controller, "amalgam_api_requests_total", "code", "CANCELLED") == 1;
    if (!released) usleep(10000);
  }
  CHECK(released);
  // The server and the VM carry on.
  CHECK(Ctl(f.sock + "pause").status == 0);
  CHECK(Ctl(f.sock + "stop").status == 0);
}

TEST_CASE("amalgamctl over TCP with TLS") {
  Fixture f;
  ApiServerOptions o;
  o.tcp_address = "127.0.0.1:0";
  o.tls_cert_file = f.dir + "/cert.pem";
  o.tls_key_file = f.dir + "/key.pem";
  const std::string cmd =
      "/usr/bin/openssl req -x509 -newkey ec -pkeyopt "
      "ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost "
      "-addext subjectAltName=IP:127.0.0.1 -keyout " +
      o.tls_key_file + " -out " + o.tls_cert_file + " 2>/dev/null";
  REQUIRE(std::system(cmd.c_str()) == 0);
  auto tls = StartApiServer(o, f.controller);
  REQUIRE(tls.ok());
  const std::string addr = "--address 127.0.0.1:" + std::to_string((*tls)->tcp_port()) + " ";
  Result r = Ctl(addr + "--tls_ca " + o.tls_cert_file + " info");
  INFO(r.out);
  CHECK(r.status == 0);
  CHECK(Has(r, "state:   not created"));
  r = Ctl(addr + "info");
  CHECK(r.status == 2);
  CHECK(Has(r, "TLS only"));
}

TEST_CASE("amalgamctl usage errors") {
  Fixture f;
  Result r = Ctl("help");
  CHECK(r.status == 0);
  CHECK(Has(r, "commands:"));
  CHECK(Ctl(f.sock).status == 2);
  r = Ctl(f.sock + "reboot");
  CHECK(r.status == 2);
  CHECK(Has(r, "unknown command \"reboot\""));
  r = Ctl("info");
  CHECK(r.status == 2);
  CHECK(Has(r, "--socket"));
  r = Ctl("--socket " + f.dir + "/missing.sock info");
  CHECK(r.status == 2);
  CHECK(Has(r, "no API socket"));
  r = Ctl(f.sock + "create");
  CHECK(r.status == 2);
  CHECK(Has(r, "--config"));
}

TEST_CASE("amalgamctl create reports config errors naming the field") {
  Fixture f;
  std::ofstream(f.dir + "/typo.json") << R"({"vcpus": 1, "memory": 64})";
  Result r = Ctl(f.sock + "create --config " + f.dir + "/typo.json");
  CHECK(r.status == 1);
  CHECK(Has(r, "INVALID_ARGUMENT"));
  CHECK(Has(r, "memory"));

  std::ofstream(f.dir + "/zero.json") << R"({"vcpus": 0, "memory_mib": 64,
      "boot": {"kernel": ")" << f.dir << R"(/kernel"}})";
  r = Ctl(f.sock + "create --config " + f.dir + "/zero.json");
  CHECK(r.status == 1);
  CHECK(Has(r, "config field \"vcpus\" is 0"));

  std::ofstream(f.dir + "/broken.json") << "{ not json";
  r = Ctl(f.sock + "create --config " + f.dir + "/broken.json");
  CHECK(r.status == 1);
  CHECK(Has(r, "broken.json"));
  CHECK(f.controller->state() == v1::VM_STATE_NOT_CREATED);
}

}  // namespace
}  // namespace amalgam::vmm::api
