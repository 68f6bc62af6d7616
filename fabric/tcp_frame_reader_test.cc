// TcpFrameReader over a real stream socket: many frames per read, frames split across reads,
// frames that outlive the reader and later reads, bad headers, size limits, EOF mid-frame.
#include "fabric/tcp_frame_reader.h"

#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <vector>

#include "fabric/frame.h"

namespace amalgam::fabric {
namespace {

const FrameKey kKey = FrameKey::FromBytes({4, 4, 4});

// A frame with `payload_len` payload bytes, every payload byte = `fill`.
std::vector<uint8_t> Frame(uint64_t seq, size_t payload_len, uint8_t fill) {
  std::vector<uint8_t> body(16, 0), payload(payload_len, fill);
  FrameHeader h;
  h.src = 1;
  h.dst = 2;
  h.seq = seq;
  EncodedFrame e;
  REQUIRE(EncodeFrame(kKey, h, body, payload, &e).ok());
  std::vector<uint8_t> out(e.size());
  e.CopyTo(out.data());
  return out;
}

struct Pair {
  Pair() { REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fd) == 0); }
  ~Pair() {
    ::close(fd[0]);
    if (fd[1] >= 0) ::close(fd[1]);
  }
  void Write(const std::vector<uint8_t>& bytes, size_t from = 0, size_t n = SIZE_MAX) {
    n = std::min(n, bytes.size() - from);
    REQUIRE(::write(fd[1], bytes.data() + from, n) == static_cast<ssize_t>(n));
  }
  void CloseWriter() {
    ::close(fd[1]);
    fd[1] = -1;
  }
  int fd[2];
};

// Reads until a frame is complete or the socket has nothing more.
TcpFrameReader::Take Next(TcpFrameReader& r, int fd, size_t max_frame, FrameBuffer* out,
                          DropReason* why) {
  for (;;) {
    auto t = r.TakeFrame(max_frame, DropReason::kHandshake, out, why);
    if (t != TcpFrameReader::Take::kNone) return t;
    auto f = r.FillFrom(fd, max_frame);
    if (f == TcpFrameReader::Fill::kWouldBlock || f == TcpFrameReader::Fill::kClosed) return t;
  }
}

}  // namespace

TEST_CASE("many frames in one write come out whole, in order, as views that stay valid") {
  Pair p;
  std::vector<std::vector<uint8_t>> sent;
  std::vector<uint8_t> stream;
  for (uint64_t i = 1; i <= 40; ++i) {  // ~170 KiB: more than one chunk
    sent.push_back(Frame(i, i % 3 == 0 ? 0 : kPageSize, static_cast<uint8_t>(i)));
    stream.insert(stream.end(), sent.back().begin(), sent.back().end());
  }
  TcpFrameReader r;
  std::vector<FrameBuffer> got;
  size_t written = 0;
  while (got.size() < sent.size()) {
    if (written < stream.size()) {  // the socket buffer is smaller than the stream
      ssize_t n = ::write(p.fd[1], stream.data() + written, stream.size() - written);
      if (n > 0) written += n;
    }
    FrameBuffer f;
    DropReason why;
    auto t = Next(r, p.fd[0], kMaxFrameSize, &f, &why);
    REQUIRE(t != TcpFrameReader::Take::kBad);
    if (t == TcpFrameReader::Take::kFrame) got.push_back(std::move(f));
  }
  // Every frame is still intact although later reads reused or replaced chunks.
  for (size_t i = 0; i < sent.size(); ++i) {
    REQUIRE(got[i].size() == sent[i].size());
    CHECK(std::memcmp(got[i].data(), sent[i].data(), sent[i].size()) == 0);
    DropReason why;
    CHECK(VerifyFrame(kKey, got[i].span(), 2, &why).ok());
  }
  CHECK_FALSE(r.mid_frame());
}

TEST_CASE("a frame dribbled in byte by byte, then a released chunk is reused safely") {
  Pair p;
  TcpFrameReader r;
  auto a = Frame(1, kPageSize, 0xaa);
  FrameBuffer f;
  DropReason why;
  for (size_t i = 0; i + 1 < a.size(); ++i) {
    p.Write(a, i, 1);
    REQUIRE(Next(r, p.fd[0], kMaxFrameSize, &f, &why) == TcpFrameReader::Take::kNone);
    REQUIRE(r.mid_frame());
  }
  p.Write(a, a.size() - 1, 1);
  REQUIRE(Next(r, p.fd[0], kMaxFrameSize, &f, &why) == TcpFrameReader::Take::kFrame);
  CHECK(std::memcmp(f.data(), a.data(), a.size()) == 0);
  f = FrameBuffer();  // released: the reader may reuse the chunk
  auto b = Frame(2, 100, 0xbb);
  p.Write(b);
  REQUIRE(Next(r, p.fd[0], kMaxFrameSize, &f, &why) == TcpFrameReader::Take::kFrame);
  CHECK(std::memcmp(f.data(), b.data(), b.size()) == 0);
}

TEST_CASE("bad headers and frames above the limit are refused before they are read whole") {
  Pair p;
  TcpFrameReader r;
  FrameBuffer f;
  DropReason why = DropReason::kCount;
  SECTION("garbage") {
    p.Write(std::vector<uint8_t>(64, 0x5a));
    CHECK(Next(r, p.fd[0], kMaxFrameSize, &f, &why) == TcpFrameReader::Take::kBad);
    CHECK(why == DropReason::kBadMagic);
  }
  SECTION("a page frame on a connection that may only send a Hello (512 bytes)") {
    auto big = Frame(1, kPageSize, 1);
    p.Write(big, 0, kFrameHeaderSize);  // the header alone decides
    CHECK(Next(r, p.fd[0], 512, &f, &why) == TcpFrameReader::Take::kBad);
    CHECK(why == DropReason::kHandshake);
  }
  SECTION("a small frame, then the limit grows (handshake done) with a big one half read") {
    auto hello = Frame(1, 0, 0);
    auto big = Frame(2, kPageSize, 7);
    std::vector<uint8_t> both = hello;
    both.insert(both.end(), big.begin(), big.begin() + 300);
    p.Write(both);
    REQUIRE(Next(r, p.fd[0], 512, &f, &why) == TcpFrameReader::Take::kFrame);
    CHECK(f.size() == hello.size());
    p.Write(big, 300);
    REQUIRE(Next(r, p.fd[0], kMaxFrameSize, &f, &why) == TcpFrameReader::Take::kFrame);
    CHECK(std::memcmp(f.data(), big.data(), big.size()) == 0);
  }
  SECTION("EOF in the middle of a frame leaves a partial frame behind") {
    auto a = Frame(1, kPageSize, 3);
    p.Write(a, 0, 1000);
    p.CloseWriter();
    CHECK(Next(r, p.fd[0], kMaxFrameSize, &f, &why) == TcpFrameReader::Take::kNone);
    CHECK(r.FillFrom(p.fd[0], kMaxFrameSize) == TcpFrameReader::Fill::kClosed);
    CHECK(r.mid_frame());
  }
}

}  // namespace amalgam::fabric
