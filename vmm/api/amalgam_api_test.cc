// The real `amalgam` binary in API mode, driven by the real `amalgamctl` over its real
// endpoints: a VM created through the API gets working virtio devices (the test guest's blk and
// rng workloads), an initrd and a CPU template; its serial output goes to amalgam's stdout when
// the config names no file; the TCP endpoint speaks TLS only (a certificate made at test time
// with Debian's openssl; nothing committed), amalgamctl --address --tls_ca works against it and
// a plaintext client is refused.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "vmm/api/amalgam.grpc.pb.h"
#include "vmm/api/http_testutil.h"
#include "vmm/api/temp_dir_testutil.h"
#include "vmm/run_process_testutil.h"

namespace amalgam::vmm {
namespace {

using api::testing::TempDir;

std::string ReadFile(const std::string& path) {
  std::stringstream s;
  s << std::ifstream(path).rdbuf();
  return s.str();
}

// A runfile binary (default: amalgam) running in the background, stdout/stderr to files in
// `dir`; SIGKILLed if still alive at the end.
class Child {
 public:
  Child(const std::string& dir, const std::vector<std::string>& args,
        const std::string& binary = "vmm/amalgam", const std::string& name = "amalgam")
      : out_(dir + "/" + name + ".out"), err_(dir + "/" + name + ".err") {
    const std::string bin = Runfile(binary);
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      (void)!freopen("/dev/null", "r", stdin);
      (void)!freopen(out_.c_str(), "w", stdout);
      (void)!freopen(err_.c_str(), "w", stderr);
      std::vector<char*> argv = {const_cast<char*>(bin.c_str())};
      for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(bin.c_str(), argv.data());
      _exit(127);
    }
  }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  // Polls (bounded, generously: the machine is shared) until `pred` holds or amalgam exited.
  bool Until(const std::function<bool()>& pred) {
    for (int i = 0; i < 12000; ++i) {
      if (pred()) return true;
      if (exit_status_ < 0 && Reap(WNOHANG)) return pred();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  // The exit status once amalgam ended by itself (bounded wait), else -1.
  int Wait() {
    Until([this] { return exit_status_ >= 0; });
    return exit_status_;
  }
  void Signal(int sig) { kill(pid_, sig); }
  std::string out() const { return ReadFile(out_); }
  std::string err() const { return ReadFile(err_); }

 private:
  bool Reap(int flags) {
    int status = 0;
    if (waitpid(pid_, &status, flags) != pid_) return false;
    exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    pid_ = -1;
    return true;
  }
  std::string out_, err_;
  pid_t pid_ = -1;
  int exit_status_ = -1;
};

ProcessResult Ctl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {Runfile("vmm/api/amalgamctl")};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv, {}, 120);
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// debug-exit 0 (the guest's "passed") is exit status 1.
constexpr int kGuestPassed = 1;

TEST_CASE("API mode: a created VM's virtio-blk works; serial output defaults to stdout") {
  TempDir dir;
  const std::string sock = dir.path + "/api.sock", disk = dir.path + "/disk.img";
  WriteFile(disk, std::string(4 << 20, '\0'));
  WriteFile(
      dir.path + "/vm.json",
      R"({"vcpus": 2, "memory_mib": 128, "boot": {"kernel": ")" + Runfile("guest/test_guest.elf") +
          R"(", "cmdline": "blk mib=2 cpus=2"}, "devices": [{"id": "rootfs", "block": {"path": ")" +
          disk + R"("}}]})");
  const int metrics_port = api::testing::FreeTcpPort();
  Child vm(dir.path,
           {"--api-socket", sock, "--metrics-addr", "127.0.0.1:" + std::to_string(metrics_port)});
  REQUIRE(vm.Until([&] { return Exists(sock); }));
  ProcessResult r = Ctl({"--socket", sock, "create", "--config", dir.path + "/vm.json"});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);

  // Before Start: the device is listed, its counters are exported (still zero).
  r = Ctl({"--socket", sock, "--json", "info"});
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("\"id\": \"rootfs\"") != std::string::npos);
  CHECK(r.out.find("\"kind\": \"virtio-block\"") != std::string::npos);
  CHECK(r.out.find(disk) != std::string::npos);
  r = Ctl({"--socket", sock, "metrics", "--prometheus"});
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("# HELP amalgam_virtio_write_requests_total") != std::string::npos);
  CHECK(r.out.find("amalgam_virtio_notifications_total{library=\"virtio\",device=\"rootfs\","
                   "kind=\"block\"} 0") != std::string::npos);

  // The same from the Prometheus endpoint, with HELP and TYPE per family.
  const std::string scrape = api::testing::HttpGet(metrics_port, "/metrics");
  INFO(scrape);
  CHECK(scrape.find("200 OK") != std::string::npos);
  CHECK(scrape.find("# TYPE amalgam_virtio_read_bytes_total counter") != std::string::npos);
  CHECK(scrape.find("amalgam_vcpu_exits_total{library=\"vcpu\",vcpu=\"1\"}") != std::string::npos);

  REQUIRE(Ctl({"--socket", sock, "start"}).exit_code == 0);
  CHECK(vm.Wait() == kGuestPassed);
  INFO("stdout:\n" << vm.out() << "\nstderr:\n" << vm.err());
  CHECK(vm.out().find("blk: ok mib=2 id=amalgam-") != std::string::npos);
  ProcessResult check = RunProcess({Runfile("guest/blk_pattern_check"), disk, "2"});
  INFO(check.out << check.err);
  CHECK(check.exit_code == 0);
}

TEST_CASE("API mode: rng device, initrd and CPU template from a --config file") {
  TempDir dir;
  const std::string sock = dir.path + "/api.sock";
  WriteFile(dir.path + "/initrd.img", std::string(8192, 'i'));
  WriteFile(dir.path + "/vm.json",
            R"({"vcpus": 1, "memory_mib": 64, "cpu_template": "baseline", "boot": {"kernel": ")" +
                Runfile("guest/test_guest.elf") + R"(", "initrd": ")" + dir.path +
                R"(/initrd.img", "cmdline": "rng"}, "serial_output": ")" + dir.path +
                R"(/serial.log", "devices": [{"id": "entropy", "rng": {}}]})");
  Child vm(dir.path, {"--api-socket", sock, "--config", dir.path + "/vm.json"});
  const int status = vm.Wait();
  const std::string serial = ReadFile(dir.path + "/serial.log");
  INFO("serial:\n" << serial << "\nstderr:\n" << vm.err());
  CHECK(status == kGuestPassed);
  CHECK(serial.find("rng: ok bytes=128") != std::string::npos);
  CHECK(vm.out().empty());  // serial went to the file, not stdout
}

TEST_CASE("API mode over TCP: TLS with a test-time certificate; plaintext is refused") {
  if (access("/usr/bin/openssl", X_OK) != 0) {
    WARN("SKIPPED: /usr/bin/openssl (Debian's openssl package) is not installed");
    return;
  }
  TempDir dir;
  const std::string cert = dir.path + "/cert.pem", key = dir.path + "/key.pem";
  const std::string make_cert =
      "/usr/bin/openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      "-days 1 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 -keyout " +
      key + " -out " + cert + " 2>/dev/null";
  REQUIRE(std::system(make_cert.c_str()) == 0);

  // Without a certificate, TCP is refused outright (exit 2, one line).
  ProcessResult plain = RunProcess({Runfile("vmm/amalgam"), "--api-tcp", "127.0.0.1:1"});
  CHECK(plain.exit_code == 2);
  CHECK(plain.err.find("TLS") != std::string::npos);

  const std::string address = "127.0.0.1:" + std::to_string(api::testing::FreeTcpPort());
  Child vm(dir.path, {"--api-tcp", address, "--api-tls-cert", cert, "--api-tls-key", key});
  REQUIRE(vm.Until([&] { return vm.err().find("control API on") != std::string::npos; }));
  INFO("stderr: " << vm.err());

  ProcessResult r = Ctl({"--address", address, "--tls_ca", cert, "info"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("not created") != std::string::npos);
  r = Ctl({"--address", address, "--tls_ca", cert, "--json", "metrics"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("amalgam_api_requests_total") != std::string::npos);

  // A client trusting some other CA is refused too.
  const std::string other = dir.path + "/other.pem";
  REQUIRE(std::system(("/usr/bin/openssl req -x509 -newkey ec -pkeyopt "
                       "ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=other -keyout " +
                       dir.path + "/other.key -out " + other + " 2>/dev/null")
                          .c_str()) == 0);
  CHECK(Ctl({"--address", address, "--tls_ca", other, "info"}).exit_code == 1);

  // A plaintext gRPC client gets nothing from the TLS port.
  auto stub =
      vmm::api::v1::Info::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  vmm::api::v1::VmInfo info;
  CHECK_FALSE(stub->GetInfo(&ctx, vmm::api::v1::InfoRequest(), &info).ok());

  vm.Signal(SIGTERM);
  CHECK(vm.Wait() == 0);
  CHECK(vm.err().find("stopped: received signal SIGTERM") != std::string::npos);
}

TEST_CASE("API mode, bad input through the binary: clear one-line errors, exit 2, no socket") {
  TempDir dir;
  const std::string sock = dir.path + "/api.sock", config = dir.path + "/vm.json";
  const std::string kernel = Runfile("guest/test_guest.elf");
  auto expect_usage_error = [&](const std::string& json, const std::string& words) {
    WriteFile(config, json);
    ProcessResult r =
        RunProcess({Runfile("vmm/amalgam"), "--api-socket", sock, "--config", config});
    INFO(json << "\n" << r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find(words) != std::string::npos);
    CHECK(r.err.find(config) != std::string::npos);  // names the file
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK_FALSE(Exists(sock));  // checked before the socket appears
  };
  expect_usage_error(R"({"vcpus": 1,)", "");                            // malformed JSON
  expect_usage_error(R"({"vcpus": 1, "memory_mb": 64})", "memory_mb");  // unknown field
  expect_usage_error(R"({"vcpus": 0, "memory_mib": 64, "boot": {"kernel": ")" + kernel + R"("}})",
                     "\"vcpus\"");  // impossible value
  expect_usage_error(R"({"vcpus": 1, "memory_mib": 64, "boot": {"kernel": ")" + kernel +
                         R"("}, "devices": [{"id": "d", "block": {"path": "/no/such.img"}}]})",
                     "/no/such.img");  // a device the host cannot open

  // A socket path taken by a regular file: refused, and the file is left alone.
  WriteFile(sock, "precious");
  ProcessResult r = RunProcess({Runfile("vmm/amalgam"), "--api-socket", sock});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find(sock) != std::string::npos);
  CHECK(ReadFile(sock) == "precious");
  unlink(sock.c_str());

  // A socket another amalgam serves: refused; the first keeps serving.
  Child first(dir.path, {"--api-socket", sock});
  REQUIRE(first.Until([&] { return Exists(sock); }));
  r = RunProcess({Runfile("vmm/amalgam"), "--api-socket", sock});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("in use") != std::string::npos);
  CHECK(Ctl({"--socket", sock, "info"}).exit_code == 0);
}

TEST_CASE("API mode: wrong-state calls and a client killed mid-call, against the binary") {
  TempDir dir;
  const std::string sock = dir.path + "/api.sock";
  WriteFile(dir.path + "/vm.json", R"({"vcpus": 1, "memory_mib": 64, "boot": {"kernel": ")" +
                                       Runfile("guest/test_guest.elf") +
                                       R"(", "cmdline": "smp cpus=1 iters=1000000000"}})");
  Child vm(dir.path, {"--api-socket", sock});
  REQUIRE(vm.Until([&] { return Exists(sock); }));
  ProcessResult r = Ctl({"--socket", sock, "pause"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("FAILED_PRECONDITION") != std::string::npos);
  REQUIRE(Ctl({"--socket", sock, "create", "--config", dir.path + "/vm.json"}).exit_code == 0);
  REQUIRE(Ctl({"--socket", sock, "start"}).exit_code == 0);
  r = Ctl({"--socket", sock, "start"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("FAILED_PRECONDITION") != std::string::npos);

  // amalgamctl wait blocks (the guest spins for a long time); kill it mid-call.
  {
    Child waiter(dir.path, {"--socket", sock, "wait"}, "vmm/api/amalgamctl", "waiter");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }  // SIGKILLed here
  r = Ctl({"--socket", sock, "--json", "metrics"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("amalgam_vcpu_exits_total") != std::string::npos);
  REQUIRE(Ctl({"--socket", sock, "pause"}).exit_code == 0);
  REQUIRE(Ctl({"--socket", sock, "resume"}).exit_code == 0);
  r = Ctl({"--socket", sock, "stop"});
  CHECK(r.exit_code == 0);
  CHECK(vm.Wait() == 0);                                              // stopped through the API
  CHECK(vm.out().find("amalgam-guest: ready") != std::string::npos);  // serial on stdout
}

}  // namespace
}  // namespace amalgam::vmm
