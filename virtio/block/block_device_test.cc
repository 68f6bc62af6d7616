#include "virtio/block/block_device.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "virtio/testing/test_driver.h"
#include "virtio/virtio_ids.h"

namespace amalgam::virtio::block {
namespace {

using testing::Seg;
using testing::TestDriver;

constexpr uint64_t kRings = 0x1000;
constexpr uint64_t kHdr = 0x20000;
constexpr uint64_t kBuf = 0x30000;
constexpr uint64_t kStatus = 0x2f000;
constexpr uint64_t kDiskBytes = 1 << 20;

std::string TempDisk(const std::string& name, uint64_t bytes) {
  const char* dir = getenv("TEST_TMPDIR");
  std::string path = std::string(dir ? dir : "/tmp") + "/" + name;
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(ftruncate(fd, static_cast<off_t>(bytes)) == 0);
  close(fd);
  return path;
}

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

struct Fixture {
  explicit Fixture(bool read_only = false, const std::string& name = "disk.img") {
    path = TempDisk(name, kDiskBytes);
    auto backend = FileBackend::Open(path, read_only);
    REQUIRE(backend.ok());
    dev = std::make_unique<BlockDevice>(std::move(*backend));
    drv.Configure(q);
    REQUIRE(q.Validate(*mem).ok());
  }
  void Header(uint32_t type, uint64_t sector) {
    RequestHeader h{type, 0, sector};
    REQUIRE(mem->WriteObj(GuestAddress(kHdr), h).ok());
    REQUIRE(mem->WriteObj<uint8_t>(GuestAddress(kStatus), 0xff).ok());
  }
  absl::Status Run() { return dev->ProcessQueue(0, *mem, q); }
  uint8_t Status() { return mem->ReadObj<uint8_t>(GuestAddress(kStatus)).value(); }

  std::string path;
  std::unique_ptr<GuestMemory> mem = GuestMemory::Create({{GuestAddress(0), 4 << 20}}).value();
  TestDriver drv{*mem, kRings, 16};
  Queue q{kQueueSize};
  std::unique_ptr<BlockDevice> dev;
};

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 7 + seed + (i >> 9));
  return v;
}

TEST_CASE("write, flush and read back: the pattern is on the host file byte for byte") {
  Fixture f;
  const auto pattern = Pattern(8192, 3);
  REQUIRE(f.mem->Write(GuestAddress(kBuf), pattern).ok());
  f.Header(kReqOut, 10);
  // Data split over two descriptors to exercise the segment walk.
  f.drv.AddChain(
      {{kHdr, 16, false}, {kBuf, 4096, false}, {kBuf + 4096, 4096, false}, {kStatus, 1, true}});
  REQUIRE(f.Run().ok());
  CHECK(f.Status() == kStatusOk);
  CHECK(f.drv.UsedElem(0).second == 1);

  f.Header(kReqFlush, 0);
  f.drv.AddChain({{kHdr, 16, false}, {kStatus, 1, true}});
  REQUIRE(f.Run().ok());
  CHECK(f.Status() == kStatusOk);
  CHECK(f.dev->stats().flushes == 1);
  const std::vector<DeviceCounter> counters = f.dev->Counters();
  CHECK(FindCounter(counters, "requests") == 2u);
  CHECK(FindCounter(counters, "write_requests") == 1u);
  CHECK(FindCounter(counters, "written_bytes") == 8192u);
  CHECK(FindCounter(counters, "flush_requests") == 1u);
  CHECK(FindCounter(counters, "request_errors") == 0u);

  const auto file = ReadFile(f.path);
  REQUIRE(file.size() == kDiskBytes);
  CHECK(std::equal(pattern.begin(), pattern.end(), file.begin() + 10 * 512));
  CHECK(file[10 * 512 - 1] == 0);

  f.Header(kReqIn, 10);
  f.drv.AddChain({{kHdr, 16, false}, {kBuf + 0x10000, 8192, true}, {kStatus, 1, true}});
  REQUIRE(f.Run().ok());
  CHECK(f.Status() == kStatusOk);
  CHECK(f.drv.UsedElem(2).second == 8193);
  std::vector<uint8_t> back(8192);
  REQUIRE(f.mem->Read(GuestAddress(kBuf + 0x10000), absl::MakeSpan(back)).ok());
  CHECK(back == pattern);
}

TEST_CASE("features and config: capacity, flush, discard; read-only adds RO") {
  Fixture f;
  CHECK(f.dev->device_id() == kDeviceIdBlock);
  CHECK((f.dev->device_features() & FeatureBit(kFeatureFlush)) != 0);
  CHECK((f.dev->device_features() & FeatureBit(kFeatureDiscard)) != 0);
  CHECK((f.dev->device_features() & FeatureBit(kFeatureRo)) == 0);
  uint64_t capacity = 0;
  f.dev->ReadConfig(0, absl::MakeSpan(reinterpret_cast<uint8_t*>(&capacity), 8));
  CHECK(capacity == kDiskBytes / 512);

  Fixture ro(true, "ro.img");
  CHECK((ro.dev->device_features() & FeatureBit(kFeatureRo)) != 0);
  CHECK((ro.dev->device_features() & FeatureBit(kFeatureDiscard)) == 0);
}

TEST_CASE("read-only disk: writes get IOERR and the file is untouched") {
  Fixture f(true, "ro2.img");
  REQUIRE(f.mem->Write(GuestAddress(kBuf), Pattern(512, 1)).ok());
  f.Header(kReqOut, 0);
  f.drv.AddChain({{kHdr, 16, false}, {kBuf, 512, false}, {kStatus, 1, true}});
  REQUIRE(f.Run().ok());
  CHECK(f.Status() == kStatusIoErr);
  const auto file = ReadFile(f.path);
  CHECK(std::all_of(file.begin(), file.begin() + 512, [](uint8_t b) { return b == 0; }));
}

TEST_CASE("sector ranges past the end (and overflowing) get IOERR") {
  Fixture f;
  f.Header(kReqIn, kDiskBytes / 512);  // one sector past the end
  f.drv.AddChain({{kHdr, 16, false}, {kBuf, 512, true}, {kStatus, 1, true}});
  REQUIRE(f.Run().ok());
  CHECK(f.Status() == kStatusIoErr);
  f.Header(kReqOut, ~uint64_t{0} / 512);  // sector * 512 would overflow
  f.drv.AddChain({{kHdr, 16, false}, {kBuf, 512, false}, {kStatus, 1, true}});
  REQUIRE(f.Run().ok());
  CHECK(f.Status() == kStatusIoErr);
  f.Header(kReqIn, 0);  // not a multiple of the sector size
  f.drv.AddChain({{kHdr, 16, false}, {kBuf, 100, true}, {kStatus, 1, true}});
  REQUIRE(f.Run().ok());
  CHECK(f.Status() == kStatusIoErr);
  f.Header(99, 0);  // unknown type
  f.drv.AddChain({{kHdr, 16, false}, {kStatus, 1, true}});
  REQUIRE(f.Run().ok());
  CHECK(f.Status() == kStatusUnsupported);
  CHECK(f.dev->stats().io_errors == 4);
  CHECK(FindCounter(f.dev->Counters(), "request_errors") == 4u);
}

TEST_CASE("GET_ID returns the serial") {
  Fixture f;
  f.Header(kReqGetId, 0);
  f.drv.AddChain({{kHdr, 16, false}, {kBuf, 20, true}, {kStatus, 1, true}});
  REQUIRE(f.Run().ok());
  CHECK(f.Status() == kStatusOk);
  char id[21] = {};
  REQUIRE(f.mem->Read(GuestAddress(kBuf), absl::MakeSpan(reinterpret_cast<uint8_t*>(id), 20)).ok());
  CHECK(std::string(id).rfind("amalgam-", 0) == 0);
}

TEST_CASE("DISCARD punches a hole: the range reads back as zeros") {
  Fixture f;
  REQUIRE(f.mem->Write(GuestAddress(kBuf), Pattern(16384, 9)).ok());
  f.Header(kReqOut, 0);
  f.drv.AddChain({{kHdr, 16, false}, {kBuf, 16384, false}, {kStatus, 1, true}});
  REQUIRE(f.Run().ok());
  REQUIRE(f.Status() == kStatusOk);
  DiscardSegment seg{8, 8, 0};  // bytes [4096, 8192)
  REQUIRE(f.mem->WriteObj(GuestAddress(kBuf + 0x8000), seg).ok());
  f.Header(kReqDiscard, 0);
  f.drv.AddChain({{kHdr, 16, false}, {kBuf + 0x8000, 16, false}, {kStatus, 1, true}});
  REQUIRE(f.Run().ok());
  CHECK(f.Status() == kStatusOk);
  const auto file = ReadFile(f.path);
  CHECK(std::all_of(file.begin() + 4096, file.begin() + 8192, [](uint8_t b) { return b == 0; }));
  CHECK(file[4095] != 0);
  CHECK(std::any_of(file.begin() + 8192, file.begin() + 16384, [](uint8_t b) { return b != 0; }));
}

TEST_CASE("hostile: status in a read-only descriptor or a short header is a device error") {
  Fixture f;
  f.Header(kReqFlush, 0);
  f.drv.AddChain({{kHdr, 16, false}, {kStatus, 1, false}});  // status byte not writable
  absl::Status s = f.Run();
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(f.Status() == 0xff);  // never written

  Fixture g(false, "short.img");
  g.Header(kReqIn, 0);
  g.drv.AddChain({{kHdr, 8, false}, {kStatus, 1, true}});
  CHECK(!g.Run().ok());
}

TEST_CASE("FileBackend::Open errors name the path") {
  auto missing = FileBackend::Open("/nonexistent/disk.img", false);
  CHECK(missing.status().code() == absl::StatusCode::kNotFound);
  CHECK(std::string(missing.status().message()).find("/nonexistent/disk.img") != std::string::npos);
  auto dir = FileBackend::Open("/", true);
  CHECK(dir.status().code() == absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace amalgam::virtio::block
