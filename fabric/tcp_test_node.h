// Test helper (testonly, needs Catch2): a TcpTransport on 127.0.0.1 with a free port, created or
// the test fails. Tests of the TCP transport share it so every test node is built one way.
#ifndef AMALGAM_FABRIC_TCP_TEST_NODE_H_
#define AMALGAM_FABRIC_TCP_TEST_NODE_H_

#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "fabric/tcp_transport.h"

namespace amalgam::fabric::testing {

// `options` supplies everything but self, key and peers (timeouts, backoff, spin).
inline std::unique_ptr<TcpTransport> MakeTcpNode(NodeId self, const FrameKey& key,
                                                 std::map<NodeId, std::string> peers,
                                                 TcpTransportOptions options = {}) {
  options.self = self;
  options.cluster_key = key;
  options.peers = std::move(peers);
  auto t = TcpTransport::Create(options);
  REQUIRE(t.ok());
  return *std::move(t);
}

inline std::string LoopbackAddress(const TcpTransport& t) {
  return absl::StrCat("127.0.0.1:", t.listen_port());
}

}  // namespace amalgam::fabric::testing

#endif  // AMALGAM_FABRIC_TCP_TEST_NODE_H_
