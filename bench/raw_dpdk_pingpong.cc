// Raw DPDK memif page-fetch ping-pong (the baseline). Deliberately self-contained: it uses only
// DPDK, so the fabric benchmark measures what amalgam's framing, authentication and reliability
// add on top of the bare port.
#include "bench/raw_dpdk_pingpong.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_mbuf.h>
#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace amalgam::bench {
namespace {

constexpr uint16_t kEtherType = 0x88B6;  // not amalgam's 0x88B5: a raw frame is never mistaken
constexpr uint32_t kMagic = 0x52415750;  // "RAWP"
constexpr size_t kPage = 4096;
constexpr uint64_t kPages = 256;  // server-side page store (1 MiB)
enum : uint8_t { kReq = 1, kResp = 2, kStop = 3, kHello = 4 };

struct __attribute__((packed)) RawHdr {
  uint32_t magic;
  uint8_t type;
  uint8_t pad[3];
  uint64_t seq;
  uint64_t page;
};
constexpr size_t kHdrLen = sizeof(rte_ether_hdr) + sizeof(RawHdr);

using Clock = std::chrono::steady_clock;
double UsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

// Same idle policy as the fabric transport (spin, then yield, then nap) so neither side starves
// the other on a 2-core machine.
struct Idle {
  int empty = 0;
  void Reset() { empty = 0; }
  void Wait() {
    ++empty;
    if (empty < 2000) return;  // spin
    if (empty < 20000) {
      sched_yield();
      return;
    }
    usleep(50);
  }
};

struct Port {
  uint16_t id = 0;
  rte_mempool* pool = nullptr;
};

bool Fail(PingpongStats* s, const char* what) {
  std::snprintf(s->error, sizeof(s->error), "%s: %s", what, rte_strerror(rte_errno));
  return false;
}

bool Setup(const RawPingpongConfig& cfg, Port* p, PingpongStats* s) {
  std::string vdev = std::string("net_memif0,role=") + (cfg.server ? "server" : "client") +
                     ",socket=" + cfg.socket_path + cfg.memif_extra;
  std::vector<std::string> args = {"raw_pingpong",
                                   "-l",
                                   std::to_string(cfg.lcore),
                                   "--no-huge",
                                   "-m",
                                   "256",
                                   "--no-pci",
                                   "--no-shconf",
                                   "--no-telemetry",
                                   "--file-prefix",
                                   cfg.file_prefix,
                                   "--log-level=warning",
                                   "--vdev",
                                   vdev};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) return Fail(s, "rte_eal_init");
  rmdir(rte_eal_get_runtime_dir());  // empty with --no-shconf; do not leave it behind
  if (rte_eth_dev_count_avail() < 1) return Fail(s, "no port");
  p->pool =
      rte_pktmbuf_pool_create("raw_pool", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
  if (p->pool == nullptr) return Fail(s, "rte_pktmbuf_pool_create");
  rte_eth_dev_info info;
  if (rte_eth_dev_info_get(p->id, &info) != 0) return Fail(s, "rte_eth_dev_info_get");
  rte_eth_conf conf;
  std::memset(&conf, 0, sizeof(conf));
  if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS)
    conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
  if (rte_eth_dev_configure(p->id, 1, 1, &conf) != 0) return Fail(s, "rte_eth_dev_configure");
  if (rte_eth_rx_queue_setup(p->id, 0, 1024, rte_socket_id(), nullptr, p->pool) != 0)
    return Fail(s, "rte_eth_rx_queue_setup");
  if (rte_eth_tx_queue_setup(p->id, 0, 1024, rte_socket_id(), nullptr) != 0)
    return Fail(s, "rte_eth_tx_queue_setup");
  if (rte_eth_dev_start(p->id) != 0) return Fail(s, "rte_eth_dev_start");
  auto t0 = Clock::now();
  while (UsSince(t0) < 20e6) {
    rte_eth_link link;
    if (rte_eth_link_get_nowait(p->id, &link) == 0 && link.link_status == RTE_ETH_LINK_UP)
      return true;
    usleep(1000);
  }
  std::snprintf(s->error, sizeof(s->error), "memif link did not come up in 20 s");
  return false;
}

void Teardown(Port* p) {
  rte_eth_dev_stop(p->id);
  rte_eth_dev_close(p->id);
  rte_eal_cleanup();
}

// Builds one frame (header + payload) as an mbuf chain of pool-sized segments.
rte_mbuf* BuildFrame(rte_mempool* pool, const RawHdr& h, const uint8_t* payload, size_t len) {
  rte_mbuf* head = rte_pktmbuf_alloc(pool);
  if (head == nullptr) return nullptr;
  auto* eth = reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_append(head, kHdrLen));
  std::memset(&eth->dst_addr, 0xff, RTE_ETHER_ADDR_LEN);
  std::memset(&eth->src_addr, 0x02, RTE_ETHER_ADDR_LEN);
  eth->ether_type = rte_cpu_to_be_16(kEtherType);
  std::memcpy(eth + 1, &h, sizeof(h));
  rte_mbuf* tail = head;
  size_t off = 0;
  while (off < len) {
    if (rte_pktmbuf_tailroom(tail) == 0) {
      rte_mbuf* seg = rte_pktmbuf_alloc(pool);
      if (seg == nullptr || rte_pktmbuf_chain(head, seg) != 0) {
        if (seg) rte_pktmbuf_free(seg);
        rte_pktmbuf_free(head);
        return nullptr;
      }
      tail = seg;
    }
    size_t n = std::min<size_t>(len - off, rte_pktmbuf_tailroom(tail));
    std::memcpy(rte_pktmbuf_mtod_offset(tail, uint8_t*, tail->data_len), payload + off, n);
    tail->data_len += n;
    head->pkt_len += n;
    off += n;
  }
  return head;
}

void SendAll(uint16_t port, rte_mbuf** b, uint16_t n) {
  uint16_t sent = 0;
  int spins = 0;
  while (sent < n && spins < 1000000) {
    uint16_t k = rte_eth_tx_burst(port, 0, b + sent, n - sent);
    sent += k;
    if (k == 0 && ++spins > 1000) sched_yield();
  }
  for (uint16_t i = sent; i < n; ++i) rte_pktmbuf_free(b[i]);
}

bool Send(const Port& p, uint8_t type, uint64_t seq, uint64_t page, const uint8_t* payload,
          size_t len) {
  RawHdr h{kMagic, type, {0, 0, 0}, seq, page};
  rte_mbuf* m = BuildFrame(p.pool, h, payload, len);
  if (m == nullptr) return false;
  SendAll(p.id, &m, 1);
  return true;
}

// Parses a received frame; copies up to kPage payload bytes into `page` when non-null.
bool Parse(rte_mbuf* m, RawHdr* h, uint8_t* page, size_t* page_len) {
  if (m->pkt_len < kHdrLen) return false;
  rte_ether_hdr eth_copy;
  auto* eth = rte_pktmbuf_read(m, 0, sizeof(eth_copy), &eth_copy);
  if (static_cast<const rte_ether_hdr*>(eth)->ether_type != rte_cpu_to_be_16(kEtherType))
    return false;
  const void* hp = rte_pktmbuf_read(m, sizeof(rte_ether_hdr), sizeof(RawHdr), h);
  if (hp != h) std::memcpy(h, hp, sizeof(*h));
  if (h->magic != kMagic) return false;
  size_t len = m->pkt_len - kHdrLen;
  if (page != nullptr && len == kPage) {
    const void* d = rte_pktmbuf_read(m, kHdrLen, kPage, page);
    if (d != page) std::memcpy(page, d, kPage);
  }
  if (page_len) *page_len = len;
  return true;
}

bool CheckPage(const uint8_t* page, uint64_t n) {
  uint64_t first, last;
  std::memcpy(&first, page, 8);
  std::memcpy(&last, page + kPage - 8, 8);
  return first == PagePatternWord(n, 0) && last == PagePatternWord(n, kPage / 8 - 1);
}

}  // namespace

PingpongStats RunRawServer(const RawPingpongConfig& cfg) {
  PingpongStats s;
  Port p;
  if (!Setup(cfg, &p, &s)) return s;
  std::vector<uint8_t> pages(kPages * kPage);
  for (uint64_t n = 0; n < kPages; ++n)
    for (uint64_t i = 0; i < kPage / 8; ++i) {
      uint64_t w = PagePatternWord(n, i);
      std::memcpy(&pages[n * kPage + i * 8], &w, 8);
    }
  Idle idle;
  bool stop = false;
  auto last_rx = Clock::now();
  rte_mbuf* rx[32];
  rte_mbuf* tx[32];
  while (!stop && UsSince(last_rx) < cfg.server_idle_exit_secs * 1e6) {
    uint16_t n = rte_eth_rx_burst(p.id, 0, rx, 32);
    if (n == 0) {
      idle.Wait();
      continue;
    }
    idle.Reset();
    last_rx = Clock::now();
    uint16_t nt = 0;
    for (uint16_t i = 0; i < n; ++i) {
      RawHdr h;
      if (Parse(rx[i], &h, nullptr, nullptr)) {
        if (h.type == kReq) {
          RawHdr r{kMagic, kResp, {0, 0, 0}, h.seq, h.page};
          rte_mbuf* m = BuildFrame(p.pool, r, &pages[(h.page % kPages) * kPage], kPage);
          if (m) tx[nt++] = m;
        } else if (h.type == kHello) {
          RawHdr r{kMagic, kHello, {0, 0, 0}, h.seq, 0};
          rte_mbuf* m = BuildFrame(p.pool, r, nullptr, 0);
          if (m) tx[nt++] = m;
        } else if (h.type == kStop) {
          stop = true;
        }
      }
      rte_pktmbuf_free(rx[i]);
    }
    if (nt) SendAll(p.id, tx, nt);
  }
  s.ok = stop ? 1 : 0;
  if (!stop) std::snprintf(s.error, sizeof(s.error), "server: no STOP from the client");
  Teardown(&p);
  return s;
}

PingpongStats RunRawClient(const RawPingpongConfig& cfg) {
  PingpongStats s;
  Port p;
  if (!Setup(cfg, &p, &s)) return s;
  std::vector<uint8_t> page(kPage);
  rte_mbuf* rx[32];
  Idle idle;
  // Handshake: the server may still be starting its port.
  bool hello = false;
  auto t0 = Clock::now();
  while (!hello && UsSince(t0) < 20e6) {
    Send(p, kHello, 0, 0, nullptr, 0);
    auto t1 = Clock::now();
    while (!hello && UsSince(t1) < 1000) {
      uint16_t n = rte_eth_rx_burst(p.id, 0, rx, 32);
      for (uint16_t i = 0; i < n; ++i) {
        RawHdr h;
        if (Parse(rx[i], &h, nullptr, nullptr) && h.type == kHello) hello = true;
        rte_pktmbuf_free(rx[i]);
      }
    }
  }
  if (!hello) {
    std::snprintf(s.error, sizeof(s.error), "client: no HELLO from the server in 20 s");
    Teardown(&p);
    return s;
  }
  // Phase 1: one request in flight.
  std::vector<double> us;
  us.reserve(cfg.rtt_iters);
  uint64_t seq = 1;
  for (int it = 0; it < cfg.warmup + cfg.rtt_iters; ++it, ++seq) {
    uint64_t pg = seq % kPages;
    auto ts = Clock::now();
    Send(p, kReq, seq, pg, nullptr, 0);
    bool got = false;
    idle.Reset();
    while (!got && UsSince(ts) < 100000) {
      uint16_t n = rte_eth_rx_burst(p.id, 0, rx, 32);
      if (n == 0) idle.Wait();
      for (uint16_t i = 0; i < n; ++i) {
        RawHdr h;
        size_t len = 0;
        if (Parse(rx[i], &h, page.data(), &len) && h.type == kResp && h.seq == seq) {
          got = true;
          if (len != kPage || !CheckPage(page.data(), pg)) ++s.bad;
        }
        rte_pktmbuf_free(rx[i]);
      }
    }
    if (!got) {
      ++s.lost;
      continue;
    }
    if (it >= cfg.warmup) us.push_back(UsSince(ts));
  }
  SummarizeRtt(us, &s);
  // Phase 2: a window of requests in flight.
  auto tb = Clock::now();
  auto last_progress = tb;
  int outstanding = 0;
  while (UsSince(tb) < cfg.bw_secs * 1e6) {
    while (outstanding < cfg.window) {
      Send(p, kReq, seq, seq % kPages, nullptr, 0);
      ++seq;
      ++outstanding;
    }
    uint16_t n = rte_eth_rx_burst(p.id, 0, rx, 32);
    if (n == 0) {
      idle.Wait();
      if (UsSince(last_progress) > 100000) {  // replies lost: refill the window
        s.lost += outstanding;
        outstanding = 0;
        last_progress = Clock::now();
      }
    } else {
      idle.Reset();
    }
    for (uint16_t i = 0; i < n; ++i) {
      RawHdr h;
      size_t len = 0;
      if (Parse(rx[i], &h, page.data(), &len) && h.type == kResp) {
        if (len != kPage || !CheckPage(page.data(), h.page)) ++s.bad;
        ++s.bw_pages;
        if (outstanding > 0) --outstanding;
        last_progress = Clock::now();
      }
      rte_pktmbuf_free(rx[i]);
    }
  }
  s.bw_secs = UsSince(tb) / 1e6;
  s.pages_per_s = s.bw_pages / s.bw_secs;
  for (int i = 0; i < 3; ++i) Send(p, kStop, 0, 0, nullptr, 0);
  usleep(10000);
  s.ok = 1;
  Teardown(&p);
  return s;
}

}  // namespace amalgam::bench
