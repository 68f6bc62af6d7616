// fabric_ping: two (or more) processes talk over the amalgam page fabric (TCP transport) and
// print round-trip times. Each node answers pings; a node given --count also sends them.
//
//   fabric_ping --gen-key /tmp/k                 # once; copy the file to every node
//   fabric_ping --node 1 --listen 127.0.0.1:7001 --peer 0=127.0.0.1:7000 --key-file /tmp/k
//   fabric_ping --node 0 --listen 127.0.0.1:7000 --peer 1=127.0.0.1:7001 --key-file /tmp/k \
//       --count 10 --page
//
// --page makes every reply carry a 4 KiB page (a remote page fetch); the pinger checks it.
#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "fabric/rpc_channel.h"
#include "fabric/tcp_transport.h"

ABSL_FLAG(std::string, gen_key, "", "write a new random cluster key to this file and exit");
ABSL_FLAG(int, node, -1, "this node's id (0, 1, ...)");
ABSL_FLAG(std::string, listen, "127.0.0.1:7000", "host:port to accept fabric connections on");
ABSL_FLAG(std::vector<std::string>, peer, {}, "peers as id=host:port, comma-separated");
ABSL_FLAG(std::string, key_file, "", "cluster key file (64 hex digits), same on every node");
ABSL_FLAG(int, count, 0, "pings to send to each peer (0: only answer pings)");
ABSL_FLAG(bool, page, false, "ask for a 4 KiB page in every reply");
ABSL_FLAG(double, interval, 0.2, "seconds between pings");
ABSL_FLAG(double, wait, 30, "seconds to wait for each peer's link to come up");
ABSL_FLAG(double, linger, 3, "seconds to keep answering after our own pings (count > 0)");

namespace fabric = amalgam::fabric;

namespace {

int Fail(const std::string& what) {
  std::fprintf(stderr, "fabric_ping: %s\n", what.c_str());
  return 1;
}

uint8_t PageByte(uint64_t counter, size_t i) { return static_cast<uint8_t>(counter * 131 + i); }

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "amalgam fabric ping: --gen-key FILE, or --node N --listen H:P --peer ID=H:P "
      "--key-file FILE [--count N --page]");
  // Accept --gen-key as well as absl's --gen_key spelling.
  std::vector<std::string> args(argv, argv + argc);
  std::vector<char*> fixed;
  for (std::string& a : args) {
    if (a.rfind("--", 0) == 0) {
      size_t end = std::min(a.find('='), a.size());
      std::replace(a.begin() + 2, a.begin() + end, '-', '_');
    }
    fixed.push_back(a.data());
  }
  absl::ParseCommandLine(static_cast<int>(fixed.size()), fixed.data());
  if (!absl::GetFlag(FLAGS_gen_key).empty()) {
    absl::Status s = fabric::FrameKey::GenerateFile(absl::GetFlag(FLAGS_gen_key));
    if (!s.ok()) return Fail(std::string(s.message()));
    std::printf("wrote a new cluster key to %s\n", absl::GetFlag(FLAGS_gen_key).c_str());
    return 0;
  }
  if (absl::GetFlag(FLAGS_node) < 0) return Fail("--node is required (this node's id)");
  if (absl::GetFlag(FLAGS_key_file).empty()) {
    return Fail("--key-file is required (create one with --gen-key FILE)");
  }
  auto key = fabric::FrameKey::FromFile(absl::GetFlag(FLAGS_key_file));
  if (!key.ok()) return Fail(std::string(key.status().message()));

  fabric::TcpTransportOptions options;
  options.self = absl::GetFlag(FLAGS_node);
  options.listen_address = absl::GetFlag(FLAGS_listen);
  options.cluster_key = *key;
  for (const std::string& p : absl::GetFlag(FLAGS_peer)) {
    std::vector<std::string> parts = absl::StrSplit(p, absl::MaxSplits('=', 1));
    uint32_t id;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &id)) {
      return Fail("--peer '" + p + "': want id=host:port, e.g. 1=127.0.0.1:7001");
    }
    options.peers[id] = parts[1];
  }
  if (options.peers.empty()) return Fail("--peer is required (at least one other node)");
  auto transport = fabric::TcpTransport::Create(options);
  if (!transport.ok()) return Fail(std::string(transport.status().message()));
  std::printf("node %u listening on %s:%d\n", options.self,
              options.listen_address.substr(0, options.listen_address.rfind(':')).c_str(),
              (*transport)->listen_port());
  std::fflush(stdout);

  fabric::RpcChannel channel(transport->get());
  channel.Handle(fabric::schema::Message::PING,
                 [](const fabric::ReceivedMessage& m) -> absl::StatusOr<fabric::RpcReply> {
                   auto ping = m.message().getPing();
                   fabric::RpcReply reply;
                   reply.message = std::make_unique<capnp::MallocMessageBuilder>();
                   auto pong = reply.message->initRoot<fabric::schema::Message>().initPong();
                   pong.setSentNs(ping.getSentNs());
                   pong.setCounter(ping.getCounter());
                   if (ping.getSentNs() & 1) {  // odd sentNs: the pinger wants a page
                     reply.page.resize(fabric::kPageSize);
                     for (size_t i = 0; i < reply.page.size(); ++i) {
                       reply.page[i] = PageByte(ping.getCounter(), i);
                     }
                   }
                   return reply;
                 });

  int count = absl::GetFlag(FLAGS_count);
  if (count == 0) {
    std::printf("answering pings; Ctrl-C to stop\n");
    std::fflush(stdout);
    for (;;) {
      absl::SleepFor(absl::Seconds(10));
      std::printf("stats: %s\n", (*transport)->GetStats().ToString().c_str());
      std::fflush(stdout);
    }
  }
  bool want_page = absl::GetFlag(FLAGS_page);
  int failures = 0;
  for (const auto& [peer, address] : options.peers) {
    absl::Status up = (*transport)->WaitForPeer(peer, absl::Seconds(absl::GetFlag(FLAGS_wait)));
    if (!up.ok()) return Fail(std::string(up.message()));
    std::vector<double> rtts;
    for (int i = 0; i < count; ++i) {
      capnp::MallocMessageBuilder b;
      auto ping = b.initRoot<fabric::schema::Message>().initPing();
      uint64_t now = static_cast<uint64_t>(absl::GetCurrentTimeNanos());
      ping.setSentNs(want_page ? (now | 1) : (now & ~uint64_t{1}));
      ping.setCounter(i);
      absl::Time start = absl::Now();
      auto reply = channel.Call(peer, b, absl::Seconds(2));
      double us = absl::ToDoubleMicroseconds(absl::Now() - start);
      if (!reply.ok()) {
        std::printf("node %u seq=%d: %s\n", peer, i, reply.status().ToString().c_str());
        ++failures;
      } else {
        bool page_ok = true;
        if (want_page) {
          page_ok = reply->page().size() == fabric::kPageSize;
          for (size_t j = 0; page_ok && j < reply->page().size(); ++j) {
            page_ok = reply->page()[j] == PageByte(i, j);
          }
        }
        std::printf("node %u seq=%d rtt=%.1f us%s\n", peer, i, us,
                    want_page ? (page_ok ? " page ok" : " PAGE CORRUPT") : "");
        if (!page_ok) ++failures;
        rtts.push_back(us);
      }
      std::fflush(stdout);
      absl::SleepFor(absl::Seconds(absl::GetFlag(FLAGS_interval)));
    }
    if (!rtts.empty()) {
      std::sort(rtts.begin(), rtts.end());
      std::printf("node %u: %zu/%d replies, rtt min %.1f / median %.1f / max %.1f us\n", peer,
                  rtts.size(), count, rtts.front(), rtts[rtts.size() / 2], rtts.back());
    }
  }
  std::printf("stats: %s\n", (*transport)->GetStats().ToString().c_str());
  std::fflush(stdout);
  absl::SleepFor(absl::Seconds(absl::GetFlag(FLAGS_linger)));
  channel.Stop();
  (*transport)->Close();
  return failures == 0 ? 0 : 2;
}
