// Test helper process for tcp_transport_process_test: node 0 sends N pages to node 1 over a
// real TcpTransport, then waits for node 1's Pong and exits 0 (non-zero on any failure).
// usage: tcp_page_sender <key-hex> <peer-address> <pages>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "fabric/tcp_transport.h"
#include "fabric/test_pages.h"

using namespace amalgam::fabric;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s <key-hex> <peer-address> <pages>\n", argv[0]);
    return 2;
  }
  auto key = FrameKey::FromHex(argv[1]);
  if (!key.ok()) return 2;
  TcpTransportOptions o;
  o.self = 0;
  o.peers[1] = argv[2];
  o.cluster_key = *key;
  auto t = TcpTransport::Create(o);
  if (!t.ok()) {
    std::fprintf(stderr, "%s\n", t.status().ToString().c_str());
    return 3;
  }
  if (auto s = (*t)->WaitForPeer(1, absl::Seconds(30)); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 4;
  }
  long pages = std::atol(argv[3]);
  for (long i = 0; i < pages; ++i) {
    auto data = testing::PagePattern(i);
    auto msg = testing::PageGrant(i);
    absl::Status s = (*t)->SendFrame(1, msg.Frame(data));
    if (!s.ok()) {
      std::fprintf(stderr, "page %ld: %s\n", i, s.ToString().c_str());
      return 5;
    }
  }
  auto done = (*t)->Receive(absl::Seconds(60));
  if (!done.ok() || done->type() != schema::Message::PONG) {
    std::fprintf(stderr, "no Pong from node 1\n");
    return 6;
  }
  (*t)->Close();
  return 0;
}
