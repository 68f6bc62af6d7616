#include "vmm/node/node_runtime.h"

#include <errno.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "vmm/node/runtime_impl.h"

namespace amalgam::vmm::node {

namespace {
constexpr uint64_t kPage = 4096;
constexpr absl::Duration kReceivePoll = absl::Milliseconds(50);

bool AllZero(const uint8_t* p) {
  static const uint8_t kZero[kPage] = {};
  return std::memcmp(p, kZero, kPage) == 0;
}
}  // namespace

absl::StatusOr<std::unique_ptr<NodeRuntime>> NodeRuntime::Create(NodeRuntimeOptions options) {
  if (options.homes == nullptr || options.transport == nullptr) {
    return absl::InvalidArgumentError("NodeRuntime: homes and transport must be set");
  }
  if (options.self >= options.homes->num_nodes()) {
    return absl::InvalidArgumentError(absl::StrCat("NodeRuntime: node id ", options.self,
                                                   " is outside the cluster of ",
                                                   options.homes->num_nodes(), " nodes"));
  }
  if (options.transport->self() != options.self) {
    return absl::InvalidArgumentError(absl::StrCat("NodeRuntime: the transport is node ",
                                                   options.transport->self(), ", not node ",
                                                   options.self));
  }
  if (options.memory != nullptr &&
      options.memory->backing() != memory::GuestMemory::Backing::kSharedMemfd) {
    return absl::FailedPreconditionError(
        "NodeRuntime: guest RAM must be on a shared memfd (GuestMemory::Backing::kSharedMemfd; "
        "MachineConfig::memory_backing) for userfaultfd");
  }
  absl::StatusOr<std::unique_ptr<HomeStore>> store =
      HomeStore::Create(*options.homes, options.self);
  if (!store.ok()) return store.status();
  auto impl = std::make_unique<Impl>(std::move(options), std::move(*store));
  return std::unique_ptr<NodeRuntime>(new NodeRuntime(std::move(impl)));
}

NodeRuntime::NodeRuntime(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
NodeRuntime::~NodeRuntime() { impl_->Stop(); }
absl::Status NodeRuntime::SeedFromGuestMemory() { return impl_->SeedFromGuestMemory(); }
absl::Status NodeRuntime::Start() { return impl_->Start(); }
void NodeRuntime::Stop() { impl_->Stop(); }
absl::Status NodeRuntime::SendOther(directory::NodeId dst, capnp::MessageBuilder& message) {
  return impl_->SendOther(dst, message);
}
void NodeRuntime::OnFault(const memory::PageFault& fault) { impl_->OnFault(fault); }
std::map<std::string, uint64_t> NodeRuntime::Metrics() const { return impl_->Metrics(); }
directory::NodeId NodeRuntime::self() const { return impl_->self(); }

std::string FormatMetrics(const std::map<std::string, uint64_t>& metrics) {
  std::string out;
  for (const auto& [name, value] : metrics) absl::StrAppend(&out, name, " ", value, "\n");
  return out;
}

NodeRuntime::Impl::Impl(NodeRuntimeOptions options, std::unique_ptr<HomeStore> store)
    : opt_(std::move(options)),
      store_(std::move(store)),
      cache_(opt_.self, opt_.homes),
      home_(opt_.self, opt_.homes) {}

absl::Status NodeRuntime::Impl::SeedFromGuestMemory() {
  if (started_ || opt_.memory == nullptr) {
    return absl::FailedPreconditionError(
        "SeedFromGuestMemory: only on a node with guest memory, before Start()");
  }
  uint8_t page_buf[kPage];
  for (const memory::GuestRegion& r : opt_.memory->regions()) {
    const off_t begin = static_cast<off_t>(r.memfd_offset());
    const off_t end = begin + static_cast<off_t>(r.size());
    off_t pos = begin;
    while (pos < end) {
      // Only the memfd's populated extents can hold what the loader wrote.
      off_t data = lseek(r.memfd(), pos, SEEK_DATA);
      if (data < 0 || data >= end) break;
      off_t hole = lseek(r.memfd(), data, SEEK_HOLE);
      if (hole < 0 || hole > end) hole = end;
      for (off_t off = data & ~static_cast<off_t>(kPage - 1); off < hole; off += kPage) {
        const uint8_t* src = r.host_address() + (off - begin);
        if (AllZero(src)) continue;
        const directory::PageNumber page = (r.start().value() + (off - begin)) / kPage;
        absl::StatusOr<directory::NodeId> home = opt_.homes->HomeOf(page);
        if (!home.ok()) return home.status();
        if (*home == opt_.self) {
          std::memcpy(store_->Page(page), src, kPage);
          if (absl::Status s = home_.Seed(page); !s.ok()) return s;
          {
            absl::MutexLock l(&metrics_mu_);
            home_written_++;
          }
          Count("seeded_local");
        } else {
          std::memcpy(page_buf, src, kPage);
          capnp::MallocMessageBuilder b;
          BuildSeed(page, &b);
          if (absl::Status s = opt_.transport->Send(*home, b, absl::MakeConstSpan(page_buf));
              !s.ok()) {
            return absl::UnavailableError(
                absl::StrCat("seeding page ", page, " to node ", *home, ": ", s.message()));
          }
          Count("sent_msgs_Seed");
          Count("sent_bytes_Seed", kPage);
        }
      }
      pos = hole;
    }
    // Every page starts Invalid: the guest's first touch asks its home.
    if (madvise(r.host_address(), r.size(), MADV_REMOVE) != 0) {
      return absl::InternalError(
          absl::StrCat("seeding: madvise(MADV_REMOVE) of guest RAM: ", strerror(errno)));
    }
  }
  return absl::OkStatus();
}

absl::Status NodeRuntime::Impl::Start() {
  if (started_) return absl::FailedPreconditionError("NodeRuntime::Start: already started");
  started_ = true;
  if (opt_.memory != nullptr) {
    absl::StatusOr<std::unique_ptr<memory::PageFaultService>> svc =
        memory::PageFaultService::Create(opt_.memory, this);
    if (!svc.ok()) return svc.status();
    service_ = std::move(*svc);
    if (absl::Status s = service_->RegisterAll(); !s.ok()) return s;
  }
  loop_thread_ = std::thread([this] { EventLoop(); });
  receive_thread_ = std::thread([this] { ReceiveLoop(); });
  if (service_ != nullptr) return service_->Start();
  return absl::OkStatus();
}

void NodeRuntime::Impl::Stop() {
  if (stopped_) return;
  stopped_ = true;
  receive_stop_ = true;
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
    cv_.Signal();
  }
  if (loop_thread_.joinable()) loop_thread_.join();
  if (receive_thread_.joinable()) receive_thread_.join();
  if (service_ != nullptr) service_->Shutdown();
}

void NodeRuntime::Impl::OnFault(const memory::PageFault& fault) {
  Fault f{fault.gpa.value() / kPage,
          fault.write ? directory::Access::kWrite : directory::Access::kRead, fault.read_ns};
  absl::MutexLock l(&mu_);
  faults_.push_back(f);
  cv_.Signal();
}

void NodeRuntime::Impl::ReceiveLoop() {
  while (!receive_stop_) {
    absl::StatusOr<fabric::ReceivedMessage> rm = opt_.transport->Receive(kReceivePoll);
    if (!rm.ok()) {
      if (rm.status().code() == absl::StatusCode::kCancelled) return;  // transport closed
      continue;
    }
    const uint64_t bytes = rm->header().body_len + rm->header().payload_len;
    if (!IsCoherence(rm->type())) {
      Count("recv_msgs_other");
      Count("recv_bytes_other", bytes);
      if (opt_.on_other_message) opt_.on_other_message(std::move(*rm));
      continue;
    }
    absl::StatusOr<WireMessage> w =
        ParseWire(rm->message(), rm->source(), opt_.self, rm->page().size());
    if (!w.ok()) {
      Error("received a bad coherence message", w.status());
      continue;
    }
    Count(absl::StrCat("recv_msgs_", WireTypeName(*w)));
    Count(absl::StrCat("recv_bytes_", WireTypeName(*w)), bytes);
    Inbound in;
    in.wire = *w;
    in.frame.emplace(std::move(*rm));
    absl::MutexLock l(&mu_);
    inbox_.push_back(std::move(in));
    cv_.Signal();
  }
}

void NodeRuntime::Impl::EventLoop() {
  for (;;) {
    std::deque<Fault> faults;
    std::deque<Inbound> inbox;
    {
      absl::MutexLock l(&mu_);
      while (!stopping_ && faults_.empty() && inbox_.empty()) {
        if (timers_.empty()) {
          cv_.Wait(&mu_);
        } else {
          int64_t wait_ns = timers_.front().deadline_ns - NowNs();
          if (wait_ns <= 0) break;
          cv_.WaitWithTimeout(&mu_, absl::Nanoseconds(wait_ns));
        }
      }
      if (stopping_) return;
      faults.swap(faults_);
      inbox.swap(inbox_);
    }
    for (const Inbound& in : inbox) HandleInbound(in);
    for (const Fault& f : faults) HandleFault(f);
    // Messages to this node itself, and what releasing holds or evicting produces (which may
    // again be messages to itself), before waiting again.
    do {
      while (!local_.empty()) {
        Inbound in = std::move(local_.front());
        local_.pop_front();
        HandleInbound(in);
      }
      ReleaseDueHolds(NowNs());
      EvictOverCapacity();
    } while (!local_.empty());
  }
}

absl::Status NodeRuntime::Impl::SendOther(directory::NodeId dst, capnp::MessageBuilder& message) {
  fabric::FlatMessage flat(message);
  absl::Status s = opt_.transport->SendFrame(dst, flat.Frame());
  if (s.ok()) {
    Count("sent_msgs_other");
    Count("sent_bytes_other", flat.bytes().size());
  }
  return s;
}

void NodeRuntime::Impl::Count(const std::string& name, uint64_t n) {
  absl::MutexLock l(&metrics_mu_);
  counters_[name] += n;
}

void NodeRuntime::Impl::Error(const std::string& what, const absl::Status& s) {
  Count("errors");
  // The first few go to stderr: they mean a protocol or peer bug worth seeing.
  if (errors_logged_.fetch_add(1) < 10) {
    std::fprintf(stderr, "amalgam: node %u: %s: %.*s\n", opt_.self, what.c_str(),
                 static_cast<int>(s.message().size()), s.message().data());
  }
}

int64_t NodeRuntime::Impl::NowNs() const {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

std::map<std::string, uint64_t> NodeRuntime::Impl::Metrics() const {
  std::map<std::string, uint64_t> m;
  {
    absl::MutexLock l(&metrics_mu_);
    m = counters_;
    static const char* kNames[] = {"I", "S", "M", "IS", "IM", "SM"};
    for (size_t i = 1; i < cache_pages_.size(); ++i) {
      m[absl::StrCat("cache_pages_", kNames[i])] = cache_pages_[i];
    }
    m["home_pages_written"] = home_written_;
  }
  m["home_pages"] = store_->pages();
  if (service_ != nullptr) {
    for (const auto& [name, value] : service_->Metrics()) m[absl::StrCat("uffd_", name)] = value;
  }
  return m;
}

}  // namespace amalgam::vmm::node
