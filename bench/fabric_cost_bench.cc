// fabric_cost_bench: where the time of one 4 KiB page fetch goes, piece by piece, in one process
// (no peer, no network): the MAC constructions libsodium offers on this CPU over a page frame and
// a request frame, the body build, the body validation (the fabric's typed validator against the
// schema-driven reflection walk it replaced), the copies, the syscalls a TCP receive makes and
// the cost of handing a message from one thread to another. Each line is the fastest of several
// trials of many iterations (ns per operation). Never asserts; numbers are for ratios only.
//   bazel run -c opt //bench:fabric_cost_bench
#include <capnp/dynamic.h>
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <sodium.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fabric/frame.h"
#include "fabric/message.h"
#include "fabric/receive_queue.h"
#include "fabric/schema/messages.capnp.h"

namespace amalgam::bench {
namespace {

namespace fab = amalgam::fabric;
using Clock = std::chrono::steady_clock;

// Fastest of `trials` runs of the mean ns per call of `fn` over `iters` calls (the minimum is
// the least disturbed by other load on a shared machine).
double NsPerOp(int iters, const std::function<void()>& fn, int trials = 11) {
  std::vector<double> ns;
  for (int t = 0; t < trials; ++t) {
    auto t0 = Clock::now();
    for (int i = 0; i < iters; ++i) fn();
    ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / iters);
  }
  std::sort(ns.begin(), ns.end());
  return ns.front();
}

void Line(const char* what, double ns) { std::printf("  %-66s %9.0f ns\n", what, ns); }

volatile uint8_t g_sink;

// A frame shaped like a PageGrant reply (header + body + page), and like a PageRequest.
std::vector<uint8_t> MakeFrame(const fab::FrameKey& key, bool with_page) {
  capnp::MallocMessageBuilder b;
  auto root = b.initRoot<fab::schema::Message>();
  if (with_page) {
    auto g = root.initPageGrant();
    g.setPage(42);
    g.setHasData(true);
    g.setReqId(7);
  } else {
    auto r = root.initPageRequest();
    r.setPage(42);
    r.setReqId(7);
  }
  fab::FlatMessage flat(b);
  std::vector<uint8_t> page(with_page ? fab::kPageSize : 0, 0x5a);
  fab::FrameHeader h;
  h.type = flat.type();
  h.src = 1;
  h.dst = 2;
  h.seq = 1;
  fab::EncodedFrame enc;
  (void)fab::EncodeFrame(key, h, flat.bytes(), page, &enc);
  std::vector<uint8_t> out(enc.size());
  enc.CopyTo(out.data());
  return out;
}

void MacConstructions(const std::vector<uint8_t>& frame, const char* label) {
  std::printf("MAC over the %s frame (%zu bytes), one tag:\n", label, frame.size());
  const uint8_t* p = frame.data();
  const size_t n = frame.size();
  uint8_t key[32] = {1, 2, 3}, nonce[12] = {9}, tag[64], empty[16] = {};
  constexpr int kIters = 4000;
  Line("Poly1305, one-time key from ChaCha20 (wire v1)", NsPerOp(kIters, [&] {
         uint8_t otk[32];
         crypto_stream_chacha20_ietf(otk, sizeof(otk), nonce, key);
         g_sink = otk[0];
         crypto_onetimeauth_poly1305(tag, p, n, otk);
       }));
  Line("Poly1305 alone (no key derivation)",
       NsPerOp(kIters, [&] { crypto_onetimeauth_poly1305(tag, p, n, key); }));
  Line("HMAC-SHA512-256 (crypto_auth)", NsPerOp(kIters, [&] { crypto_auth(tag, p, n, key); }));
  Line("HMAC-SHA256 (crypto_auth_hmacsha256)",
       NsPerOp(kIters, [&] { crypto_auth_hmacsha256(tag, p, n, key); }));
  Line("keyed BLAKE2b-128 (crypto_generichash)",
       NsPerOp(kIters, [&] { crypto_generichash(tag, 16, p, n, key, sizeof(key)); }));
  if (crypto_aead_aes256gcm_is_available()) {
    Line("AES-256-GMAC: GCM, frame as AD, key schedule per call", NsPerOp(kIters, [&] {
           unsigned long long tl;
           crypto_aead_aes256gcm_encrypt_detached(empty, tag, &tl, empty, 0, p, n, nullptr, nonce,
                                                  key);
         }));
    alignas(16) crypto_aead_aes256gcm_state st;
    crypto_aead_aes256gcm_beforenm(&st, key);
    Line("AES-256-GMAC: GCM, frame as AD, precomputed key (wire v2)", NsPerOp(kIters, [&] {
           unsigned long long tl;
           crypto_aead_aes256gcm_encrypt_detached_afternm(empty, tag, &tl, empty, 0, p, n, nullptr,
                                                          nonce, &st);
         }));
    std::vector<uint8_t> ct(n);
    Line("AES-256-GCM encrypting the frame (for comparison: AD-only is GMAC)", NsPerOp(kIters, [&] {
           unsigned long long tl;
           crypto_aead_aes256gcm_encrypt_detached_afternm(ct.data(), tag, &tl, p, n, nullptr, 0,
                                                          nullptr, nonce, &st);
         }));
  } else {
    std::printf("  AES-256-GCM: not available on this CPU (no AES-NI/PCLMUL)\n");
  }
  Line("ChaCha20-Poly1305 IETF AEAD, frame as AD", NsPerOp(kIters, [&] {
         unsigned long long tl;
         crypto_aead_chacha20poly1305_ietf_encrypt_detached(empty, tag, &tl, empty, 0, p, n,
                                                            nullptr, nonce, key);
       }));
  fab::FrameKey fkey = fab::FrameKey::FromBytes({1, 2, 3});
  std::vector<uint8_t> signed_frame = MakeFrame(fkey, n > 1000);
  fab::FrameHeader h = fab::ReadFrameHeader(signed_frame.data());
  auto body = absl::MakeConstSpan(signed_frame).subspan(fab::kFrameHeaderSize, h.body_len);
  auto payload =
      absl::MakeConstSpan(signed_frame).subspan(fab::kFrameHeaderSize + h.body_len, h.payload_len);
  fab::EncodedFrame enc;
  Line("fabric EncodeFrame (header + MAC, this build's construction)",
       NsPerOp(kIters, [&] { (void)fab::EncodeFrame(fkey, h, body, payload, &enc); }));
  fab::DropReason why;
  Line("fabric VerifyFrame (checks + MAC, this build's construction)",
       NsPerOp(kIters, [&] { (void)fab::VerifyFrame(fkey, signed_frame, 2, &why); }));
}

// The pre-v2 validator: reads every field of the active member through capnp's reflection API.
void ReflectWalk(const capnp::DynamicValue::Reader& value) {
  switch (value.getType()) {
    case capnp::DynamicValue::STRUCT: {
      auto s = value.as<capnp::DynamicStruct>();
      for (auto field : s.getSchema().getNonUnionFields()) ReflectWalk(s.get(field));
      KJ_IF_MAYBE (field, s.which()) {
        ReflectWalk(s.get(*field));
      }
      break;
    }
    case capnp::DynamicValue::LIST:
      for (auto element : value.as<capnp::DynamicList>()) ReflectWalk(element);
      break;
    default:
      break;
  }
}

void BodyCosts(const std::vector<uint8_t>& frame) {
  std::printf("Body (PageGrant reply with its page):\n");
  fab::FrameHeader h = fab::ReadFrameHeader(frame.data());
  const auto* words = reinterpret_cast<const capnp::word*>(frame.data() + fab::kFrameHeaderSize);
  kj::ArrayPtr<const capnp::word> body(words, h.body_len / 8);
  constexpr int kIters = 4000;
  // first_segment_words 0: capnp's default first segment (1024 words).
  auto build = [](unsigned first_segment_words) {
    capnp::MallocMessageBuilder b(first_segment_words == 0 ? capnp::SUGGESTED_FIRST_SEGMENT_WORDS
                                                           : first_segment_words);
    auto g = b.initRoot<fab::schema::Message>().initPageGrant();
    g.setPage(42);
    g.setHasData(true);
    fab::FlatMessage flat(b);
    g_sink = flat.bytes()[0];
  };
  Line("build: MallocMessageBuilder() (default 8 KiB segment) + PageGrant + FlatMessage",
       NsPerOp(kIters, [&] { build(0); }));
  Line("build: the same with kMessageFirstSegmentWords (512 bytes)",
       NsPerOp(kIters, [&] { build(fab::kMessageFirstSegmentWords); }));
  Line("capnp FlatArrayMessageReader + getRoot + which()", NsPerOp(kIters, [&] {
         capnp::FlatArrayMessageReader r(body);
         g_sink = static_cast<uint8_t>(r.getRoot<fab::schema::Message>().which());
       }));
  Line("validate: reflection walk (wire v1 validator)", NsPerOp(kIters, [&] {
         capnp::ReaderOptions strict;
         strict.traversalLimitInWords = body.size();
         strict.nestingLimit = 16;
         capnp::FlatArrayMessageReader r(body, strict);
         ReflectWalk(capnp::DynamicStruct::Reader(r.getRoot<fab::schema::Message>()));
       }));
  std::vector<uint8_t> copy(frame);
  Line("ReceivedMessage::Parse (this build's validator + consumer reader)", NsPerOp(kIters, [&] {
         fab::FrameBuffer buf(copy.data(), copy.size(), nullptr);
         auto m = fab::ReceivedMessage::Parse(std::move(buf), h);
         g_sink = m.ok();
       }));
}

void CopyAndSyscallCosts(const std::vector<uint8_t>& frame) {
  std::printf("Copies and syscalls:\n");
  std::vector<uint8_t> dst(frame.size());
  Line("memcpy of the page frame", NsPerOp(100000, [&] {
         std::memcpy(dst.data(), frame.data(), frame.size());
         g_sink = dst[7];
       }));
  Line("FrameBuffer::Allocate + memcpy (DPDK mbuf -> frame)", NsPerOp(100000, [&] {
         fab::FrameBuffer b = fab::FrameBuffer::Allocate(frame.size());
         std::memcpy(b.data(), frame.data(), frame.size());
         g_sink = b.data()[7];
       }));
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) return;
  int ep = ::epoll_create1(0);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = sv[0];
  ::epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &ev);
  uint8_t buf[64];
  Line("read() that returns EAGAIN", NsPerOp(100000, [&] { g_sink = ::read(sv[0], buf, 48) > 0; }));
  Line("epoll_wait(timeout 0), nothing ready", NsPerOp(100000, [&] {
         epoll_event out;
         g_sink = ::epoll_wait(ep, &out, 1, 0) > 0;
       }));
  Line("write(48) + read(48) on a socketpair", NsPerOp(50000, [&] {
         g_sink = ::write(sv[1], buf, 48) > 0;
         g_sink = ::read(sv[0], buf, 48) > 0;
       }));
  ::close(ep);
  ::close(sv[0]);
  ::close(sv[1]);
}

// absl::Mutex, which every queue and link lock is: Debian's Abseil is built with its debug-mode
// deadlock detection on (a lock graph updated on every Lock), so the cost depends on that mode.
void MutexCosts() {
  std::printf("Locks (absl::Mutex, uncontended Lock + Unlock):\n");
  absl::Mutex mu;
  Line("deadlock detection as the library default", NsPerOp(200000, [&] {
         mu.Lock();
         mu.Unlock();
       }));
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::Mutex mu2;
  Line("deadlock detection off (absl::SetMutexDeadlockDetectionMode kIgnore)", NsPerOp(200000, [&] {
         mu2.Lock();
         mu2.Unlock();
       }));
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kAbort);
}

// One message handed across threads through ReceiveQueue and back (a thread ping-pong), against
// Push + TryPop on one thread: the cost a receive thread adds when the consumer waits elsewhere.
void HandOffCosts(const std::vector<uint8_t>& frame) {
  std::printf("Receive hand-off (ReceiveQueue):\n");
  fab::FrameHeader h = fab::ReadFrameHeader(frame.data());
  auto make = [&] {
    fab::FrameBuffer b(const_cast<uint8_t*>(frame.data()), frame.size(), nullptr);
    return *fab::ReceivedMessage::Parse(std::move(b), h);
  };
  fab::ReceiveQueue same;
  Line("Push + TryPop on one thread (consumer polls itself)", NsPerOp(20000, [&] {
         same.Push(make());
         g_sink = same.TryPop().has_value();
       }));
  fab::ReceiveQueue to_b, to_a;
  std::atomic<bool> done{false};
  std::thread b([&] {
    while (!done.load()) {
      auto m = to_b.Pop(absl::Milliseconds(100));
      if (m.ok()) to_a.Push(*std::move(m));
    }
  });
  constexpr int kRounds = 5000;
  double round = NsPerOp(
      kRounds,
      [&] {
        to_b.Push(make());
        g_sink = to_a.Pop(absl::Seconds(5)).ok();
      },
      5);
  done = true;
  b.join();
  Line("one thread-to-thread hand-off (half a blocking ping-pong)", round / 2);
}

int Main() {
  if (sodium_init() < 0) return 1;
  std::printf("fabric_cost_bench: per-operation costs of the fabric's receive and send paths\n");
  fab::FrameKey key = fab::FrameKey::FromBytes({1, 2, 3});
  std::vector<uint8_t> page_frame = MakeFrame(key, true);
  std::vector<uint8_t> request_frame = MakeFrame(key, false);
  MacConstructions(page_frame, "page (PageGrant + 4 KiB)");
  MacConstructions(request_frame, "request (PageRequest)");
  BodyCosts(page_frame);
  CopyAndSyscallCosts(page_frame);
  HandOffCosts(page_frame);
  MutexCosts();
  return 0;
}

}  // namespace
}  // namespace amalgam::bench

int main() { return amalgam::bench::Main(); }
