// DpdkPort and InitEal against real DPDK vdevs (net_null, net_memif) in this process.
#include "fabric/dpdk/dpdk_port.h"

#include <rte_mbuf.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"

namespace amalgam::fabric {
namespace {

// A unique scratch path. Not getpid(): inside Bazel's sandbox every test is pid 12, and memif's
// sockets live in the (shared) abstract namespace.
std::string UniquePath(const char* name) {
  char dir[] = "/tmp/amfport.XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  return std::string(dir) + "/" + name;
}

void StartEal() {
  EalOptions o;
  o.memory_mb = 128;
  o.file_prefix = absl::StrCat("amfport", getpid());
  absl::Status s = InitEal(o);
  INFO(s.ToString());
  REQUIRE(s.ok());
  REQUIRE(EalInitialized());
  // A second call is a no-op, whatever its options.
  o.lcore = 99;
  REQUIRE(InitEal(o).ok());
}

TEST_CASE("EAL arguments are the sandbox-safe set") {
  EalOptions o;
  o.lcore = 1;
  o.file_prefix = "p";
  auto args = EalArguments(o);
  std::string all;
  for (auto& a : args) all += a + " ";
  for (const char* want : {"-l 1 ", "--no-huge ", "--no-pci ", "--no-shconf ", "--no-telemetry ",
                           "--file-prefix p "}) {
    INFO(all);
    REQUIRE(all.find(want) != std::string::npos);
  }
}

TEST_CASE("a null port opens, comes up, takes and gives frames, and closes") {
  StartEal();
  DpdkPortOptions po;
  po.devargs = "net_null7";
  po.mbufs = 1023;
  auto port = DpdkPort::Open(po);
  INFO(port.status().ToString());
  REQUIRE(port.ok());
  REQUIRE((*port)->LinkUp());
  REQUIRE((*port)->pool() != nullptr);
  rte_mbuf* m = rte_pktmbuf_alloc((*port)->pool());
  REQUIRE(m != nullptr);
  std::memset(rte_pktmbuf_append(m, 64), 0xab, 64);
  REQUIRE((*port)->TxBurst(&m, 1) == 1);  // the null PMD frees it
  rte_mbuf* rx[4];
  uint16_t n = (*port)->RxBurst(rx, 4);  // the null PMD produces empty frames
  for (uint16_t i = 0; i < n; ++i) rte_pktmbuf_free(rx[i]);
  port->reset();
  // The name is free again: the vdev was detached.
  auto again = DpdkPort::Open(po);
  REQUIRE(again.ok());
}

TEST_CASE("bad device arguments are refused with a message naming them") {
  StartEal();
  DpdkPortOptions po;
  po.devargs = "";
  REQUIRE(absl::IsInvalidArgument(DpdkPort::Open(po).status()));
  po.devargs = "net_nosuchpmd0,foo=bar";
  auto r = DpdkPort::Open(po);
  REQUIRE(absl::IsInvalidArgument(r.status()));
  REQUIRE(r.status().message().find("net_nosuchpmd0") != std::string::npos);
}

TEST_CASE("a memif client without a server gives up after the link timeout") {
  StartEal();
  DpdkPortOptions po;
  po.devargs = "net_memif5,role=client,socket=" + UniquePath("none.sock");
  po.link_timeout = absl::Milliseconds(300);
  auto r = DpdkPort::Open(po);
  REQUIRE_FALSE(r.ok());
  INFO(r.status().ToString());
  REQUIRE(r.status().message().find("memif") != std::string::npos);
}

TEST_CASE("a memif server without a client reports UNAVAILABLE and releases its device") {
  StartEal();
  // Device name and mempool name are free again after each failed Open. (The socket path is
  // not: DPDK 22.11's memif keeps a server's listener open after the device is removed, so each
  // round uses a new path.)
  for (int i = 0; i < 3; ++i) {
    DpdkPortOptions server;
    server.devargs = "net_memif8,role=server,socket=" + UniquePath("server.sock");
    server.link_timeout = absl::Milliseconds(50);
    absl::Status st = DpdkPort::Open(server).status();
    INFO(st.ToString());
    REQUIRE(absl::IsUnavailable(st));
  }
}

}  // namespace
}  // namespace amalgam::fabric
