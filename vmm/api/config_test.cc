#include "vmm/api/config.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace amalgam::vmm::api {
namespace {

std::string TempDir() {
  const char* t = std::getenv("TEST_TMPDIR");
  return t ? t : "/tmp";
}

std::string WriteFile(const std::string& name, const std::string& text) {
  const std::string path = TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

v1::VmConfig GoodConfig() {
  v1::VmConfig c;
  c.set_vcpus(2);
  c.set_memory_mib(64);
  c.mutable_boot()->set_kernel(WriteFile("kernel.elf", "not really a kernel"));
  c.mutable_boot()->set_cmdline("console=ttyS0");
  return c;
}

// The message must name the field and be INVALID_ARGUMENT.
void RequireInvalid(const absl::Status& s, const std::string& field) {
  INFO(s.ToString());
  REQUIRE(s.code() == absl::StatusCode::kInvalidArgument);
  REQUIRE(s.message().find(field) != absl::string_view::npos);
}

TEST_CASE("JSON config parses in snake_case and lowerCamelCase") {
  auto c = ParseVmConfigJson(R"({"vcpus": 4, "memory_mib": "128",
      "boot": {"kernel": "/k", "cmdline": "quiet"}, "cpuTemplate": "baseline",
      "devices": [{"id": "d0", "block": {"path": "/disk", "read_only": true}}, {"id": "r", "rng": {}}],
      "cluster": {"node_id": 1, "nodes": [{"id": 1, "address": "a:1", "vcpus": [0, 1]}]}})");
  REQUIRE(c.ok());
  CHECK(c->vcpus() == 4);
  CHECK(c->memory_mib() == 128);
  CHECK(c->boot().cmdline() == "quiet");
  CHECK(c->cpu_template() == "baseline");
  REQUIRE(c->devices_size() == 2);
  CHECK(c->devices(0).block().read_only());
  CHECK(c->devices(1).has_rng());
  CHECK(c->cluster().nodes(0).vcpus_size() == 2);
}

TEST_CASE("the example config in testdata parses") {
  auto c = LoadVmConfigFile("vmm/api/testdata/vm.json");
  INFO(c.status().ToString());
  REQUIRE(c.ok());
  CHECK(c->cluster().nodes_size() == 2);
  CHECK(c->devices(1).net().mac() == "02:00:00:00:00:01");
}

TEST_CASE("config JSON round-trips") {
  v1::VmConfig c = GoodConfig();
  auto back = ParseVmConfigJson(VmConfigToJson(c));
  REQUIRE(back.ok());
  CHECK(back->SerializeAsString() == c.SerializeAsString());
}

TEST_CASE("unknown field is rejected with its name") {
  auto c = ParseVmConfigJson(R"({"vcpus": 1, "memory_mb": 64})");
  REQUIRE_FALSE(c.ok());
  RequireInvalid(c.status(), "memory_mb");
}

TEST_CASE("malformed JSON is rejected") {
  for (const char* bad : {"{", "", "[1,2]", R"({"vcpus": "many"})", R"({"vcpus": -1})",
                          R"({"boot": 3})", "{\"vcpus\": 1 \"memory_mib\": 2}"}) {
    auto c = ParseVmConfigJson(bad);
    INFO(bad);
    REQUIRE_FALSE(c.ok());
    CHECK(c.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(c.status().message().find("VmConfig") != absl::string_view::npos);
    CHECK(c.status().message().find('\n') == absl::string_view::npos);  // one line
  }
}

TEST_CASE("config file errors name the file") {
  auto missing = LoadVmConfigFile(TempDir() + "/no-such-config.json");
  REQUIRE(missing.status().code() == absl::StatusCode::kNotFound);
  CHECK(missing.status().message().find("no-such-config.json") != absl::string_view::npos);

  const std::string bad = WriteFile("bad.json", R"({"vcpus": 1, "colour": "red"})");
  auto parsed = LoadVmConfigFile(bad);
  RequireInvalid(parsed.status(), "colour");
  CHECK(parsed.status().message().find(bad) != absl::string_view::npos);

  const std::string good = WriteFile("good.json", VmConfigToJson(GoodConfig()));
  auto ok = LoadVmConfigFile(good);
  REQUIRE(ok.ok());
  CHECK(ok->vcpus() == 2);
}

TEST_CASE("a good config validates") { REQUIRE(ValidateVmConfig(GoodConfig()).ok()); }

TEST_CASE("impossible values are rejected naming the field") {
  v1::VmConfig c = GoodConfig();
  SECTION("0 vcpus") {
    c.set_vcpus(0);
    RequireInvalid(ValidateVmConfig(c), "vcpus");
  }
  SECTION("too many vcpus") {
    c.set_vcpus(kMaxVcpus + 1);
    RequireInvalid(ValidateVmConfig(c), "vcpus");
  }
  SECTION("no memory") {
    c.set_memory_mib(0);
    RequireInvalid(ValidateVmConfig(c), "memory_mib");
  }
  SECTION("absurd memory") {
    c.set_memory_mib(uint64_t{64} << 30);  // bytes where MiB were meant
    RequireInvalid(ValidateVmConfig(c), "memory_mib");
  }
  SECTION("missing kernel") {
    c.mutable_boot()->clear_kernel();
    RequireInvalid(ValidateVmConfig(c), "boot.kernel");
  }
  SECTION("kernel path that does not exist") {
    c.mutable_boot()->set_kernel(TempDir() + "/no-such-kernel");
    RequireInvalid(ValidateVmConfig(c), "boot.kernel");
    CHECK(ValidateVmConfig(c).message().find("No such file") != absl::string_view::npos);
  }
  SECTION("kernel is a directory") {
    c.mutable_boot()->set_kernel(TempDir());
    RequireInvalid(ValidateVmConfig(c), "boot.kernel");
  }
  SECTION("missing initrd") {
    c.mutable_boot()->set_initrd(TempDir() + "/no-such-initrd");
    RequireInvalid(ValidateVmConfig(c), "boot.initrd");
  }
  SECTION("cmdline too long") {
    c.mutable_boot()->set_cmdline(std::string(kMaxCmdlineBytes + 1, 'x'));
    RequireInvalid(ValidateVmConfig(c), "boot.cmdline");
  }
  SECTION("bad cpu template name") {
    c.set_cpu_template("../etc");
    RequireInvalid(ValidateVmConfig(c), "cpu_template");
  }
  SECTION("device without kind") {
    c.add_devices()->set_id("x");
    RequireInvalid(ValidateVmConfig(c), "devices[0]");
  }
  SECTION("duplicate device ids") {
    for (int i = 0; i < 2; ++i) {
      v1::DeviceConfig* d = c.add_devices();
      d->set_id("same");
      d->mutable_rng();
    }
    RequireInvalid(ValidateVmConfig(c), "devices[1].id");
  }
  SECTION("bad mac") {
    v1::DeviceConfig* d = c.add_devices();
    d->set_id("n");
    d->mutable_net()->set_tap("tap0");
    d->mutable_net()->set_mac("zz:00:00:00:00:00");
    RequireInvalid(ValidateVmConfig(c), "devices[0].net.mac");
  }
  SECTION("block device without a file") {
    v1::DeviceConfig* d = c.add_devices();
    d->set_id("b");
    d->mutable_block()->set_path(TempDir() + "/no-disk");
    RequireInvalid(ValidateVmConfig(c), "devices[0].block.path");
  }
  SECTION("cluster: this node not listed") {
    c.mutable_cluster()->set_node_id(3);
    v1::NodeConfig* n = c.mutable_cluster()->add_nodes();
    n->set_id(1);
    n->set_address("h:1");
    RequireInvalid(ValidateVmConfig(c), "cluster.node_id");
  }
  SECTION("cluster: vcpu out of range") {
    v1::NodeConfig* n = c.mutable_cluster()->add_nodes();
    n->set_address("h:1");
    n->add_vcpus(2);
    RequireInvalid(ValidateVmConfig(c), "cluster.nodes[0].vcpus");
  }
  SECTION("cluster: memory does not add up") {
    v1::NodeConfig* n = c.mutable_cluster()->add_nodes();
    n->set_address("h:1");
    n->set_memory_mib(32);
    RequireInvalid(ValidateVmConfig(c), "memory_mib");
  }
  SECTION("cluster: unknown transport") {
    c.mutable_cluster()->add_nodes()->set_address("h:1");
    c.mutable_cluster()->set_transport("carrier-pigeon");
    RequireInvalid(ValidateVmConfig(c), "cluster.transport");
  }
}

}  // namespace
}  // namespace amalgam::vmm::api
