#include "vmm/config/vm_config.h"

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace amalgam::vmm::config {
namespace {

absl::StatusOr<VmConfig> Parse(std::vector<std::string> args) {
  bool help = false;
  return ParseArgs(args, &help);
}

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

TEST_CASE("config: --initrd and --cpu-template") {
  auto c = Parse({"--kernel", "/k", "--initrd", "/rd.img", "--cpu-template=baseline"});
  REQUIRE(c.ok());
  CHECK(c->initrd == "/rd.img");
  CHECK(c->cpu_template == "baseline");
  auto d = Parse({"--kernel=/k"});
  REQUIRE(d.ok());
  CHECK(d->initrd.empty());
  CHECK(d->cpu_template.empty());
  CHECK(Msg(Parse({"--kernel=/k", "--initrd="}).status()) == "--initrd needs a file path");
  CHECK(Msg(Parse({"--kernel=/k", "--cpu-template="}).status()).find("--cpu-template needs") == 0);
}

TEST_CASE("config: virtio device flags and switches") {
  auto c = Parse({"--kernel=/k", "--disk", "/a.img", "--disk=/b.img,ro", "--net", "tap=t0", "--rng",
                  "--virtio-console=false"});
  REQUIRE(c.ok());
  CHECK(c->disks == std::vector<std::string>{"/a.img", "/b.img,ro"});
  CHECK(c->nets == std::vector<std::string>{"tap=t0"});
  CHECK(c->rng);
  CHECK_FALSE(c->virtio_console);
  CHECK(Msg(Parse({"--kernel=/k", "--rng=maybe"}).status()).find("--rng=maybe") == 0);
  CHECK(Msg(Parse({"--kernel=/k", "--disk"}).status()) == "--disk needs a value");
}

TEST_CASE("config: the control plane flags") {
  auto c = Parse({"--api-socket", "/run/a.sock", "--config=/vm.json", "--metrics-addr=:9100"});
  REQUIRE(c.ok());
  CHECK(c->api_socket == "/run/a.sock");
  CHECK(c->config_file == "/vm.json");
  CHECK(c->metrics_address == ":9100");
  CHECK(ValidateConfig(*c, {}).ok());  // no --kernel needed: the VM comes from the API
  // The VM is described once: by the API/config, or by flags.
  CHECK(Msg(Parse({"--api-socket=/s", "--kernel=/k"}).status()).find("with --api-socket") == 0);
  CHECK(Msg(Parse({"--api-socket=/s", "--disk=/d"}).status()).find("with --api-socket") == 0);
  CHECK(Msg(Parse({"--kernel=/k", "--config=/vm.json"}).status()).find("--config, ") == 0);
  CHECK(Msg(Parse({"--api-socket="}).status()) == "--api-socket needs a socket path");
  auto t = Parse({"--api-tcp=127.0.0.1:7443", "--api-tls-cert=/c.pem", "--api-tls-key=/k.pem"});
  REQUIRE(t.ok());
  CHECK(t->api_mode());
  CHECK(t->api_tcp == "127.0.0.1:7443");
  CHECK(t->tls_cert == "/c.pem");
  CHECK(t->tls_key == "/k.pem");
  CHECK(Msg(Parse({"--api-socket=/s", "--api-tls-cert=/c.pem"}).status()).find("need --api-tcp") !=
        std::string::npos);
  CHECK(
      Msg(Parse({"--kernel=/k", "--api-tls-key=/k.pem"}).status()).find("belong to the control") !=
      std::string::npos);
}

TEST_CASE("config: memory sizes") {
  CHECK(*ParseMemorySize("256M") == 256ull << 20);
  CHECK(*ParseMemorySize("1G") == 1ull << 30);
  CHECK(*ParseMemorySize("1g") == 1ull << 30);
  CHECK(*ParseMemorySize("2GiB") == 2ull << 30);
  CHECK(*ParseMemorySize("512K") == 512ull << 10);
  CHECK(*ParseMemorySize("64MB") == 64ull << 20);
  CHECK(*ParseMemorySize("128") == 128ull << 20);
  CHECK(*ParseMemorySize("0") == 0);
  for (const char* bad :
       {"", "M", "abc", "12Q", "-1G", "1.5G", "99999999999999999999", "17000000T"}) {
    INFO(bad);
    auto r = ParseMemorySize(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(Msg(r.status()).find("--memory") == 0);
  }
}

TEST_CASE("config: flags in both spellings, defaults, required kernel") {
  ::unsetenv(kKvmDeviceEnv);
  auto c = Parse({"--kernel", "/k", "--cmdline=smp cpus=2", "--memory", "1G", "--vcpus=2",
                  "--serial-out", "/tmp/s"});
  REQUIRE(c.ok());
  CHECK(c->kernel == "/k");
  CHECK(c->cmdline == "smp cpus=2");
  CHECK(c->memory_bytes == 1ull << 30);
  CHECK(c->vcpus == 2);
  CHECK(c->serial_out == "/tmp/s");
  CHECK(c->kvm_device == "/dev/kvm");

  auto d = Parse({"--kernel=/k"});
  REQUIRE(d.ok());
  CHECK(d->memory_bytes == 256ull << 20);
  CHECK(d->vcpus == 1);
  CHECK(d->serial_out.empty());

  CHECK(Msg(Parse({}).status()).find("--kernel is required") == 0);
  CHECK(Msg(Parse({"--kernel"}).status()) == "--kernel needs a value");
  CHECK(Msg(Parse({"--kernel=/k", "--bogus=1"}).status()).find("unknown flag --bogus") == 0);
  CHECK(Msg(Parse({"--kernel=/k", "stray"}).status()).find("unexpected argument 'stray'") == 0);
  CHECK(Msg(Parse({"--kernel=/k", "--vcpus=two"}).status()).find("--vcpus two") == 0);
  CHECK(Msg(Parse({"--kernel=/k", "--vcpus=-1"}).status()).find("--vcpus -1") == 0);

  bool help = false;
  REQUIRE(ParseArgs({"--bogus", "--help"}, &help).status().code() ==
          absl::StatusCode::kInvalidArgument);
  REQUIRE(ParseArgs({"--help"}, &help).ok());
  CHECK(help);
}

TEST_CASE("config: the KVM device comes from the environment or the hidden flag") {
  ::setenv(kKvmDeviceEnv, "/nonexistent/kvm", 1);
  auto c = Parse({"--kernel=/k"});
  REQUIRE(c.ok());
  CHECK(c->kvm_device == "/nonexistent/kvm");
  auto f = Parse({"--kernel=/k", "--kvm-device=/dev/other"});
  REQUIRE(f.ok());
  CHECK(f->kvm_device == "/dev/other");
  ::unsetenv(kKvmDeviceEnv);
}

TEST_CASE("config: validation against host limits") {
  VmConfig c;
  c.kernel = "/k";
  HostLimits limits{8ull << 30, 4};
  CHECK(ValidateConfig(c, limits).ok());
  c.memory_bytes = 0;
  CHECK(Msg(ValidateConfig(c, limits)) == "--memory must be larger than 0 (e.g. 256M)");
  c.memory_bytes = 1ull << 40;
  CHECK(Msg(ValidateConfig(c, limits)) ==
        "--memory 1024G is more than this host can back (RAM + swap = 8G); use a smaller size");
  c.memory_bytes = 1000;
  CHECK(Msg(ValidateConfig(c, limits)).find("not a multiple of 4 KiB") != std::string::npos);
  c.memory_bytes = 256ull << 20;
  c.vcpus = 0;
  CHECK(Msg(ValidateConfig(c, limits)) == "--vcpus must be at least 1");
  c.vcpus = 5;
  CHECK(Msg(ValidateConfig(c, limits)) ==
        "--vcpus 5 is more than KVM allows on this host (KVM_CAP_MAX_VCPUS = 4)");
}

TEST_CASE("config: host memory limit from a meminfo file") {
  auto real = HostMemoryLimit();
  REQUIRE(real.ok());
  CHECK(*real > (64ull << 20));
  const char* dir = std::getenv("TEST_TMPDIR");
  std::string path = std::string(dir ? dir : "/tmp") + "/meminfo";
  FILE* f = std::fopen(path.c_str(), "w");
  REQUIRE(f != nullptr);
  std::fputs("MemTotal:        1024 kB\nMemFree:  10 kB\nSwapTotal:       1024 kB\n", f);
  std::fclose(f);
  auto lim = HostMemoryLimit(path);
  REQUIRE(lim.ok());
  CHECK(*lim == 2048ull * 1024);
  CHECK_FALSE(HostMemoryLimit("/nonexistent/meminfo").ok());
}

TEST_CASE("config: usage text documents every flag and exit code") {
  std::string u = UsageText();
  for (const char* s : {"--kernel", "--cmdline", "--memory", "--vcpus", "--serial-out",
                        "AMALGAM_KVM_DEVICE", "(v << 1) | 1", "triple fault", "internal error"}) {
    INFO(s);
    CHECK(u.find(s) != std::string::npos);
  }
}

}  // namespace
}  // namespace amalgam::vmm::config
