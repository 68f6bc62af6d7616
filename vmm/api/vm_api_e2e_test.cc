// The control API end to end: a real VM (KVM, the test guest) behind a real gRPC server on a real
// Unix socket, driven by real clients: create, start, pause (the guest's counter stops), resume
// (it moves again), info, metrics, shutdown; concurrent clients; a client that leaves mid-Wait;
// the example client and amalgamctl against the same kind of server.
#include <elf.h>
#include <grpcpp/grpcpp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "vmm/api/amalgam.grpc.pb.h"
#include "vmm/api/format.h"
#include "vmm/api/machine_backend.h"
#include "vmm/api/server.h"
#include "vmm/api/temp_dir_testutil.h"

namespace amalgam::vmm::api {
namespace {

using testing::TempDir;

constexpr char kGuest[] = "guest/test_guest.elf";

std::string ReadAll(const std::string& path) {
  std::stringstream s;
  s << std::ifstream(path).rdbuf();
  return s.str();
}

// Guest-physical address of a symbol of the (identity-loaded, unstripped) test guest.
uint64_t GuestSymbol(const std::string& name) {
  const std::string elf = ReadAll(kGuest);
  REQUIRE(elf.size() > sizeof(Elf64_Ehdr));
  Elf64_Ehdr eh;
  std::memcpy(&eh, elf.data(), sizeof(eh));
  for (int i = 0; i < eh.e_shnum; ++i) {
    Elf64_Shdr sh;
    std::memcpy(&sh, elf.data() + eh.e_shoff + i * sizeof(sh), sizeof(sh));
    if (sh.sh_type != SHT_SYMTAB) continue;
    Elf64_Shdr strtab;
    std::memcpy(&strtab, elf.data() + eh.e_shoff + sh.sh_link * sizeof(sh), sizeof(strtab));
    for (size_t off = 0; off + sizeof(Elf64_Sym) <= sh.sh_size; off += sizeof(Elf64_Sym)) {
      Elf64_Sym sym;
      std::memcpy(&sym, elf.data() + sh.sh_offset + off, sizeof(sym));
      if (name == elf.data() + strtab.sh_offset + sym.st_name) return sym.st_value;
    }
  }
  FAIL("symbol " << name << " not in " << kGuest);
  return 0;
}

struct RealVm {
  RealVm() {
    backend = new MachineBackend();
    controller = std::make_shared<VmController>(std::unique_ptr<VmBackend>(backend));
    ApiServerOptions o;
    o.unix_socket = dir.path + "/api.sock";
    auto s = StartApiServer(o, controller);
    REQUIRE(s.ok());
    server = *std::move(s);
    auto channel = Connect();
    lifecycle = v1::Lifecycle::NewStub(channel);
    info = v1::Info::NewStub(channel);
    metrics = v1::Metrics::NewStub(channel);
  }
  std::shared_ptr<grpc::Channel> Connect() const {
    return grpc::CreateChannel("unix:" + dir.path + "/api.sock",
                               grpc::InsecureChannelCredentials());
  }
  v1::VmConfig Config(const std::string& cmdline, uint32_t vcpus = 1) const {
    v1::VmConfig c;
    c.set_vcpus(vcpus);
    c.set_memory_mib(64);
    c.mutable_boot()->set_kernel(kGuest);
    c.mutable_boot()->set_cmdline(cmdline);
    c.set_serial_output(dir.path + "/serial.log");
    return c;
  }
  std::string Serial() const { return ReadAll(dir.path + "/serial.log"); }
  // Waits (bounded, generously: the machine is shared) until the serial log contains `text`.
  bool SerialShows(const std::string& text) const {
    for (int i = 0; i < 6000; ++i) {
      if (Serial().find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  uint64_t Counter(uint64_t addr) {
    auto v = backend->machine()->memory().ReadObj<uint64_t>(memory::GuestAddress(addr));
    REQUIRE(v.ok());
    return *v;
  }
  v1::VmInfo GetInfo() {
    grpc::ClientContext ctx;
    v1::VmInfo out;
    REQUIRE(info->GetInfo(&ctx, v1::InfoRequest(), &out).ok());
    return out;
  }
  template <typename Req, typename Resp>
  grpc::Status Call(grpc::Status (v1::Lifecycle::Stub::*fn)(grpc::ClientContext*, const Req&,
                                                            Resp*),
                    Resp* resp = nullptr) {
    grpc::ClientContext ctx;
    Resp local;
    return (lifecycle.get()->*fn)(&ctx, Req(), resp ? resp : &local);
  }

  TempDir dir;
  MachineBackend* backend;
  std::shared_ptr<VmController> controller;
  std::unique_ptr<ApiServer> server;
  std::unique_ptr<v1::Lifecycle::Stub> lifecycle;
  std::unique_ptr<v1::Info::Stub> info;
  std::unique_ptr<v1::Metrics::Stub> metrics;
};

using S = v1::Lifecycle::Stub;

TEST_CASE("e2e: lifecycle of a real VM over the Unix socket") {
  RealVm vm;
  const uint64_t counter = GuestSymbol("g_smp_counter");
  {
    grpc::ClientContext ctx;
    v1::CreateResponse created;
    // A counter loop in ring 3 that runs far longer than the test.
    grpc::Status st =
        vm.lifecycle->Create(&ctx, vm.Config("smp cpus=2 iters=999999999999", 2), &created);
    INFO(st.error_message());
    REQUIRE(st.ok());
    CHECK(created.info().state() == v1::VM_STATE_CREATED);
    CHECK(created.info().vcpus(0).run_state() == v1::VCPU_RUN_STATE_CREATED);
  }
  CHECK(vm.Call<v1::PauseRequest, v1::PauseResponse>(&S::Pause).error_code() ==
        grpc::StatusCode::FAILED_PRECONDITION);
  REQUIRE(vm.Call<v1::StartRequest, v1::StartResponse>(&S::Start).ok());
  CHECK(vm.Call<v1::StartRequest, v1::StartResponse>(&S::Start).error_code() ==
        grpc::StatusCode::FAILED_PRECONDITION);
  REQUIRE(vm.SerialShows("amalgam-guest: ready"));

  // The counter moves while running...
  uint64_t before = vm.Counter(counter);
  for (int i = 0; i < 3000 && vm.Counter(counter) == before; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  INFO(vm.Serial());
  REQUIRE(vm.Counter(counter) > before);

  // ...stops while paused...
  REQUIRE(vm.Call<v1::PauseRequest, v1::PauseResponse>(&S::Pause).ok());
  v1::VmInfo info = vm.GetInfo();
  CHECK(info.state() == v1::VM_STATE_PAUSED);
  REQUIRE(info.vcpus_size() == 2);
  CHECK(info.vcpus(0).run_state() == v1::VCPU_RUN_STATE_PAUSED);
  CHECK(info.vcpus(1).run_state() == v1::VCPU_RUN_STATE_PAUSED);
  const uint64_t paused_at = vm.Counter(counter);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(vm.Counter(counter) == paused_at);
  CHECK(vm.Call<v1::PauseRequest, v1::PauseResponse>(&S::Pause).error_code() ==
        grpc::StatusCode::FAILED_PRECONDITION);

  // ...and moves again after resume.
  REQUIRE(vm.Call<v1::ResumeRequest, v1::ResumeResponse>(&S::Resume).ok());
  for (int i = 0; i < 3000 && vm.Counter(counter) == paused_at; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(vm.Counter(counter) > paused_at);

  // Each vCPU thread reports its own run state as it wakes, a moment after Resume returns.
  for (int i = 0; i < 3000; ++i) {
    info = vm.GetInfo();
    if (info.vcpus(0).run_state() == v1::VCPU_RUN_STATE_RUNNING &&
        info.vcpus(1).run_state() == v1::VCPU_RUN_STATE_RUNNING) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::printf("%s", FormatInfo(info).c_str());  // What `amalgamctl info` shows, for the log.
  CHECK(info.state() == v1::VM_STATE_RUNNING);
  REQUIRE(info.vcpus_size() == 2);
  CHECK(info.vcpus(0).run_state() == v1::VCPU_RUN_STATE_RUNNING);
  CHECK(info.vcpus(1).run_state() == v1::VCPU_RUN_STATE_RUNNING);
  CHECK(info.vcpus(1).node_id() == 0);
  CHECK(info.vcpus(0).exits() > 0);  // At least the serial writes of the boot.
  CHECK(info.vcpus(0).host_thread_id() > 0);
  CHECK(info.vcpus(1).host_thread_id() != info.vcpus(0).host_thread_id());
  REQUIRE(info.memory_size() == 1);
  CHECK(info.memory(0).home_bytes() == 64ull << 20);
  CHECK(info.memory(0).resident_pages() > 0);
  CHECK(info.devices_size() >= 1);

  {
    grpc::ClientContext ctx;
    v1::MetricsResponse m;
    REQUIRE(vm.metrics->GetMetrics(&ctx, v1::MetricsRequest(), &m).ok());
    bool exits = false, resident = false;
    for (const v1::Metric& x : m.metrics()) {
      if (x.name() == "amalgam_vcpu_exits_total" && x.library() == "vcpu") exits = x.value() > 0;
      if (x.name() == "amalgam_memory_resident_pages") resident = x.value() > 0;
    }
    CHECK(exits);
    CHECK(resident);
  }

  // Measured, never asserted (the machine is shared): API round trips against the real VM.
  {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 50; ++i) vm.GetInfo();
    const auto t1 = std::chrono::steady_clock::now();
    for (int i = 0; i < 20; ++i) {
      REQUIRE(vm.Call<v1::PauseRequest, v1::PauseResponse>(&S::Pause).ok());
      REQUIRE(vm.Call<v1::ResumeRequest, v1::ResumeResponse>(&S::Resume).ok());
    }
    const auto t2 = std::chrono::steady_clock::now();
    for (int i = 0; i < 50; ++i) {
      grpc::ClientContext ctx;
      v1::MetricsResponse m;
      REQUIRE(vm.metrics->GetMetrics(&ctx, v1::MetricsRequest(), &m).ok());
    }
    const auto t3 = std::chrono::steady_clock::now();
    using us = std::chrono::microseconds;
    std::printf(
        "measured: GetInfo %lld us/call, Pause+Resume %lld us/pair, GetMetrics %lld us/call "
        "(2 vCPUs, Unix socket)\n",
        static_cast<long long>(std::chrono::duration_cast<us>(t1 - t0).count() / 50),
        static_cast<long long>(std::chrono::duration_cast<us>(t2 - t1).count() / 20),
        static_cast<long long>(std::chrono::duration_cast<us>(t3 - t2).count() / 50));
  }

  v1::ShutdownResponse down;
  REQUIRE(vm.Call<v1::ShutdownRequest, v1::ShutdownResponse>(&S::Shutdown, &down).ok());
  CHECK(down.exit().reason() == v1::VmExit::REASON_USER_SHUTDOWN);
  info = vm.GetInfo();
  CHECK(info.state() == v1::VM_STATE_STOPPED);
  CHECK(info.vcpus(0).run_state() == v1::VCPU_RUN_STATE_STOPPED);
  CHECK(info.vcpus(1).run_state() == v1::VCPU_RUN_STATE_STOPPED);
  CHECK(vm.Call<v1::ResumeRequest, v1::ResumeResponse>(&S::Resume).error_code() ==
        grpc::StatusCode::FAILED_PRECONDITION);
  // The counter is frozen for good.
  const uint64_t final_count = vm.Counter(counter);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK(vm.Counter(counter) == final_count);
}

TEST_CASE("e2e: concurrent clients and a client that leaves mid-Wait") {
  RealVm vm;
  {
    grpc::ClientContext ctx;
    v1::CreateResponse created;
    REQUIRE(vm.lifecycle->Create(&ctx, vm.Config("smp cpus=1 iters=999999999999"), &created).ok());
  }
  REQUIRE(vm.Call<v1::StartRequest, v1::StartResponse>(&S::Start).ok());
  REQUIRE(vm.SerialShows("amalgam-guest: ready"));

  // A Wait whose client cancels while the server blocks in it.
  // Catch2 assertions stay on the main thread (it is not thread-safe): threads record results.
  grpc::StatusCode leaver_code = grpc::StatusCode::OK;
  std::thread leaver([&] {
    auto stub = v1::Lifecycle::NewStub(vm.Connect());
    grpc::ClientContext ctx;
    v1::WaitResponse resp;
    std::thread cancel([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      ctx.TryCancel();
    });
    leaver_code = stub->Wait(&ctx, v1::WaitRequest(), &resp).error_code();
    cancel.join();
  });
  // Meanwhile four clients hammer info/metrics and two race pause/resume.
  std::atomic<int> unexpected{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 6; ++i) {
    clients.emplace_back([&, i] {
      auto ch = vm.Connect();
      auto life = v1::Lifecycle::NewStub(ch);
      auto info = v1::Info::NewStub(ch);
      auto met = v1::Metrics::NewStub(ch);
      for (int j = 0; j < 10; ++j) {
        grpc::ClientContext ctx;
        grpc::Status st;
        if (i < 2) {
          if ((i + j) % 2) {
            v1::PauseResponse r;
            st = life->Pause(&ctx, v1::PauseRequest(), &r);
          } else {
            v1::ResumeResponse r;
            st = life->Resume(&ctx, v1::ResumeRequest(), &r);
          }
          if (!st.ok() && st.error_code() != grpc::StatusCode::FAILED_PRECONDITION) unexpected++;
        } else if (i % 2) {
          v1::VmInfo r;
          if (!info->GetInfo(&ctx, v1::InfoRequest(), &r).ok()) unexpected++;
        } else {
          v1::MetricsResponse r;
          if (!met->GetMetrics(&ctx, v1::MetricsRequest(), &r).ok()) unexpected++;
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  leaver.join();
  CHECK(leaver_code == grpc::StatusCode::CANCELLED);
  CHECK(unexpected == 0);

  // The server is healthy and the VM still obeys.
  const v1::VmState state = vm.GetInfo().state();
  REQUIRE((state == v1::VM_STATE_RUNNING || state == v1::VM_STATE_PAUSED));
  if (state == v1::VM_STATE_PAUSED) {
    REQUIRE(vm.Call<v1::ResumeRequest, v1::ResumeResponse>(&S::Resume).ok());
  }
  // A Wait from another client returns when a third one shuts the VM down.
  grpc::Status wait_status;
  v1::WaitResponse waited;
  std::thread waiter([&] {
    auto stub = v1::Lifecycle::NewStub(vm.Connect());
    grpc::ClientContext ctx;
    wait_status = stub->Wait(&ctx, v1::WaitRequest(), &waited);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const bool shut_down = vm.Call<v1::ShutdownRequest, v1::ShutdownResponse>(&S::Shutdown).ok();
  waiter.join();
  REQUIRE(shut_down);
  REQUIRE(wait_status.ok());
  CHECK(waited.exit().reason() == v1::VmExit::REASON_USER_SHUTDOWN);
}

TEST_CASE("e2e: a guest that exits by itself is reported through Wait") {
  RealVm vm;
  {
    grpc::ClientContext ctx;
    v1::CreateResponse created;
    REQUIRE(vm.lifecycle->Create(&ctx, vm.Config("hello"), &created).ok());
  }
  REQUIRE(vm.Call<v1::StartRequest, v1::StartResponse>(&S::Start).ok());
  v1::WaitResponse waited;
  REQUIRE(vm.Call<v1::WaitRequest, v1::WaitResponse>(&S::Wait, &waited).ok());
  INFO(vm.Serial());
  CHECK(waited.exit().reason() == v1::VmExit::REASON_GUEST_SHUTDOWN);
  CHECK(waited.exit().exit_code() == 0);
  CHECK(vm.Serial().find("hello: Hello from the amalgam test guest") != std::string::npos);
  CHECK(vm.GetInfo().state() == v1::VM_STATE_STOPPED);
  CHECK(vm.Call<v1::PauseRequest, v1::PauseResponse>(&S::Pause).error_code() ==
        grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_CASE("e2e: config the VMM cannot honour is a clear error, and the VM can still be made") {
  RealVm vm;
  v1::VmConfig c = vm.Config("hello");
  c.add_devices()->set_id("rng0");
  c.mutable_devices(0)->mutable_rng();
  c.add_devices()->set_id("rng1");
  c.mutable_devices(1)->mutable_rng();
  grpc::ClientContext ctx;
  v1::CreateResponse created;
  grpc::Status st = vm.lifecycle->Create(&ctx, c, &created);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(st.error_message().find("devices[1].rng") != std::string::npos);

  c = vm.Config("hello");
  c.add_devices()->set_id("disk");
  c.mutable_devices(0)->mutable_block()->set_path(vm.dir.path + "/no-such-disk.img");
  grpc::ClientContext ctx4;
  st = vm.lifecycle->Create(&ctx4, c, &created);
  CHECK_FALSE(st.ok());
  CHECK(st.error_message().find("no-such-disk.img") != std::string::npos);

  c = vm.Config("hello");
  c.set_memory_mib(uint64_t{1} << 20);  // 1 TiB: more than this host's RAM and swap.
  grpc::ClientContext ctx1;
  st = vm.lifecycle->Create(&ctx1, c, &created);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(st.error_message().find("RAM and swap") != std::string::npos);

  c = vm.Config("hello", 1000);  // More vCPUs than the API allows.
  grpc::ClientContext ctx3;
  st = vm.lifecycle->Create(&ctx3, c, &created);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(st.error_message().find("vcpus") != std::string::npos);

  c = vm.Config("hello");
  c.set_memory_mib(1);  // The guest image alone needs more.
  grpc::ClientContext ctx2;
  st = vm.lifecycle->Create(&ctx2, c, &created);
  INFO(st.error_message());
  CHECK_FALSE(st.ok());
  CHECK(vm.GetInfo().state() == v1::VM_STATE_NOT_CREATED);
}

TEST_CASE("e2e: the example client boots the test guest and waits for it") {
  RealVm vm;
  const std::string config = vm.dir.path + "/vm.json";
  std::ofstream(config) << R"({"vcpus": 1, "memory_mib": 64, "boot": {"kernel": ")" << kGuest
                        << R"(", "cmdline": "hello"}, "serial_output": ")" << vm.dir.path
                        << R"(/serial.log"})";
  FILE* p = popen(("./examples/grpc_client " + vm.dir.path + "/api.sock " + config).c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[1024];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), p)) > 0;) out.append(buf, n);
  const int status = pclose(p);
  INFO(out);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(out.find("stopped: REASON_GUEST_SHUTDOWN exit_code 0") != std::string::npos);
}

}  // namespace
}  // namespace amalgam::vmm::api
