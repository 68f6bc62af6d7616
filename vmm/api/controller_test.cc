#include "vmm/api/controller.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "vmm/api/fake_backend.h"

namespace amalgam::vmm::api {
namespace {

v1::VmConfig GoodConfig() {
  const char* t = std::getenv("TEST_TMPDIR");
  const std::string kernel = std::string(t ? t : "/tmp") + "/controller-kernel";
  std::ofstream(kernel) << "x";
  v1::VmConfig c;
  c.set_vcpus(2);
  c.set_memory_mib(16);
  c.mutable_boot()->set_kernel(kernel);
  return c;
}

void RequirePrecondition(const absl::Status& s, const std::string& words) {
  INFO(s.ToString());
  REQUIRE(s.code() == absl::StatusCode::kFailedPrecondition);
  REQUIRE(s.message().find(words) != absl::string_view::npos);
}

struct Fixture {
  FakeBackend* fake = new FakeBackend();
  VmController c{std::unique_ptr<VmBackend>(fake)};
};

TEST_CASE("transition table") {
  using S = v1::VmState;
  using O = LifecycleOp;
  const S states[] = {v1::VM_STATE_NOT_CREATED, v1::VM_STATE_CREATED, v1::VM_STATE_RUNNING,
                      v1::VM_STATE_PAUSED, v1::VM_STATE_STOPPED};
  const O ops[] = {O::kCreate, O::kStart, O::kPause, O::kResume, O::kShutdown};
  // allowed[state][op]
  const bool allowed[5][5] = {
      {true, false, false, false, false},   // not created
      {false, true, false, false, true},    // created
      {false, false, true, false, true},    // running
      {false, false, false, true, true},    // paused
      {false, false, false, false, false},  // stopped
  };
  for (int s = 0; s < 5; ++s) {
    for (int o = 0; o < 5; ++o) {
      absl::Status st = CheckTransition(states[s], ops[o]);
      INFO("state " << StateName(states[s]) << " op " << o << ": " << st.ToString());
      CHECK(st.ok() == allowed[s][o]);
      if (!st.ok()) CHECK(st.code() == absl::StatusCode::kFailedPrecondition);
    }
  }
}

TEST_CASE("full lifecycle over the fake") {
  Fixture f;
  CHECK(f.c.state() == v1::VM_STATE_NOT_CREATED);
  RequirePrecondition(f.c.Start(), "create it first");
  RequirePrecondition(f.c.Wait(absl::InfiniteFuture(), nullptr).status(), "not created");

  auto info = f.c.Create(GoodConfig());
  REQUIRE(info.ok());
  CHECK(info->state() == v1::VM_STATE_CREATED);
  CHECK(info->vcpus_size() == 2);
  RequirePrecondition(f.c.Create(GoodConfig()).status(), "one VM per process");
  RequirePrecondition(f.c.Pause(), "start it first");

  REQUIRE(f.c.Start().ok());
  RequirePrecondition(f.c.Start(), "already started");
  RequirePrecondition(f.c.Resume(), "not paused");
  REQUIRE(f.c.Pause().ok());
  CHECK(f.c.Info().vcpus(0).run_state() == v1::VCPU_RUN_STATE_PAUSED);
  RequirePrecondition(f.c.Pause(), "already paused");
  RequirePrecondition(f.c.Start(), "resume it instead");
  REQUIRE(f.c.Resume().ok());
  CHECK(f.c.state() == v1::VM_STATE_RUNNING);

  auto exit = f.c.Shutdown();
  REQUIRE(exit.ok());
  CHECK(exit->reason() == v1::VmExit::REASON_USER_SHUTDOWN);
  CHECK(f.c.state() == v1::VM_STATE_STOPPED);
  for (absl::Status s : {f.c.Start(), f.c.Pause(), f.c.Resume(), f.c.Shutdown().status()}) {
    RequirePrecondition(s, "cannot run again");
  }
  auto waited = f.c.Wait(absl::InfiniteFuture(), nullptr);
  REQUIRE(waited.ok());
  CHECK(waited->reason() == v1::VmExit::REASON_USER_SHUTDOWN);
  CHECK(f.c.Info().has_exit());
}

TEST_CASE("invalid config is INVALID_ARGUMENT and leaves no VM") {
  Fixture f;
  v1::VmConfig c = GoodConfig();
  c.set_vcpus(0);
  auto r = f.c.Create(c);
  REQUIRE(r.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(f.fake->calls() == 0);  // Never reached the VMM.
  CHECK(f.c.state() == v1::VM_STATE_NOT_CREATED);
  REQUIRE(f.c.Create(GoodConfig()).ok());
}

TEST_CASE("backend failure keeps the state") {
  Fixture f;
  REQUIRE(f.c.Create(GoodConfig()).ok());
  REQUIRE(f.c.Start().ok());
  f.fake->FailNextCall(absl::InternalError("vcpu 1 would not stop"));
  absl::Status s = f.c.Pause();
  CHECK(s.code() == absl::StatusCode::kInternal);
  CHECK(f.c.state() == v1::VM_STATE_RUNNING);
}

TEST_CASE("guest exit is noticed and Wait returns it") {
  Fixture f;
  REQUIRE(f.c.Create(GoodConfig()).ok());
  REQUIRE(f.c.Start().ok());
  // Catch2 assertions stay on the main thread (it is not thread-safe).
  absl::StatusOr<v1::VmExit> exit;
  std::thread waiter([&] { exit = f.c.Wait(absl::InfiniteFuture(), nullptr); });
  f.fake->GuestExit(7);
  waiter.join();
  REQUIRE(exit.ok());
  CHECK(exit->reason() == v1::VmExit::REASON_GUEST_SHUTDOWN);
  CHECK(exit->exit_code() == 7);
  CHECK(f.c.state() == v1::VM_STATE_STOPPED);
  RequirePrecondition(f.c.Pause(), "stopped");
}

TEST_CASE("Wait in CREATED wakes on Shutdown; deadline and cancellation end it") {
  Fixture f;
  REQUIRE(f.c.Create(GoodConfig()).ok());
  auto timed_out = f.c.Wait(absl::Now() + absl::Milliseconds(50), nullptr);
  CHECK(timed_out.status().code() == absl::StatusCode::kDeadlineExceeded);
  auto cancelled = f.c.Wait(absl::InfiniteFuture(), [] { return true; });
  CHECK(cancelled.status().code() == absl::StatusCode::kCancelled);

  absl::StatusOr<v1::VmExit> exit;
  std::thread waiter([&] { exit = f.c.Wait(absl::InfiniteFuture(), nullptr); });
  const bool shut_down = f.c.Shutdown().ok();
  waiter.join();
  REQUIRE(shut_down);
  REQUIRE(exit.ok());
  CHECK(exit->reason() == v1::VmExit::REASON_USER_SHUTDOWN);
}

TEST_CASE("metrics carry API counters and backend counters") {
  Fixture f;
  f.c.CountRequest("Pause", absl::StatusCode::kFailedPrecondition);
  REQUIRE(f.c.Create(GoodConfig()).ok());
  bool saw_request = false, saw_backend = false, saw_state = false;
  for (const v1::Metric& m : f.c.Metrics()) {
    if (m.name() == "amalgam_api_requests_total" && m.labels().at("method") == "Pause") {
      saw_request = m.value() == 1 && m.labels().at("code") == "FAILED_PRECONDITION";
    }
    if (m.name() == "amalgam_fake_progress_total") saw_backend = true;
    if (m.name() == "amalgam_api_vm_state" && m.labels().at("state") == "created") {
      saw_state = m.value() == 1;
    }
  }
  CHECK(saw_request);
  CHECK(saw_backend);
  CHECK(saw_state);
}

TEST_CASE("metrics include every registered source, also before Create, until removed") {
  Fixture f;
  auto count_named = [&f](const std::string& name) {
    int n = 0;
    for (const v1::Metric& m : f.c.Metrics()) n += m.name() == name && m.library() == "node";
    return n;
  };
  const MetricsRegistry::Id id =
      f.c.metrics_registry().Add(MakeMetricsSource([](MetricSamples* out) {
        MetricSample s;
        s.name = "amalgam_node_pages_fetched_total";
        s.library = "node";
        s.value = 5;
        out->push_back(s);
      }));
  CHECK(count_named("amalgam_node_pages_fetched_total") == 1);
  f.c.metrics_registry().Remove(id);
  CHECK(count_named("amalgam_node_pages_fetched_total") == 0);
}

}  // namespace
}  // namespace amalgam::vmm::api
