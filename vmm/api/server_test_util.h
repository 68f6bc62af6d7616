// Shared by the fake-VM service tests: a temp dir short enough for Unix socket paths, a server
// on a real socket over a FakeBackend, and one-line client calls. Test-only; not thread-safe
// beyond what the gRPC stubs are (assert only on the test's main thread).
#ifndef AMALGAM_VMM_API_SERVER_TEST_UTIL_H_
#define AMALGAM_VMM_API_SERVER_TEST_UTIL_H_

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "vmm/api/amalgam.grpc.pb.h"
#include "vmm/api/fake_backend.h"
#include "vmm/api/server.h"
#include "vmm/api/temp_dir_testutil.h"

namespace amalgam::vmm::api::testing {

inline v1::VmConfig GoodConfig(const std::string& dir) {
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
inline grpc::Status Call(Stub& stub, Fn fn, Resp* resp = nullptr) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  Req req;
  Resp local;
  return (stub.*fn)(&ctx, req, resp ? resp : &local);
}

inline grpc::Status Start(Served& s) {
  return Call<v1::StartRequest, v1::StartResponse>(*s.lifecycle, &v1::Lifecycle::Stub::Start);
}
inline grpc::Status Pause(Served& s) {
  return Call<v1::PauseRequest, v1::PauseResponse>(*s.lifecycle, &v1::Lifecycle::Stub::Pause);
}
inline grpc::Status Resume(Served& s) {
  return Call<v1::ResumeRequest, v1::ResumeResponse>(*s.lifecycle, &v1::Lifecycle::Stub::Resume);
}
inline v1::VmInfo GetInfo(Served& s) {
  v1::VmInfo info;
  REQUIRE(Call<v1::InfoRequest, v1::VmInfo>(*s.info, &v1::Info::Stub::GetInfo, &info).ok());
  return info;
}
inline grpc::Status Create(Served& s, const v1::VmConfig& c, v1::CreateResponse* resp = nullptr) {
  grpc::ClientContext ctx;
  v1::CreateResponse local;
  return s.lifecycle->Create(&ctx, c, resp ? resp : &local);
}

}  // namespace amalgam::vmm::api::testing

#endif  // AMALGAM_VMM_API_SERVER_TEST_UTIL_H_
