#include "fabric/dpdk/dpdk_port.h"

#include <pthread.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace amalgam::fabric {
namespace {

std::mutex eal_mu;
bool eal_up = false;
absl::Status eal_error = absl::OkStatus();

std::string Err(int code) { return rte_strerror(code < 0 ? -code : code); }

// AMALGAM_DPDK_LOG_LEVEL (e.g. "debug", "pmd.net.memif:debug") overrides the option when set:
// the one knob needed to see why a vdev does not come up.
std::string LogLevel(const EalOptions& o) {
  const char* env = getenv("AMALGAM_DPDK_LOG_LEVEL");
  return env != nullptr && *env != 0 ? env : o.log_level;
}

}  // namespace

std::vector<std::string> EalArguments(const EalOptions& o) {
  std::string prefix = o.file_prefix.empty() ? absl::StrCat("amalgam", getpid()) : o.file_prefix;
  std::vector<std::string> args = {
      "amalgam-fabric", "-l",          std::to_string(o.lcore),
      "--no-huge",      "-m",          std::to_string(o.memory_mb),
      "--no-pci",       "--no-shconf", "--no-telemetry",
      "--file-prefix",  prefix,        absl::StrCat("--log-level=", LogLevel(o))};
  args.insert(args.end(), o.extra_args.begin(), o.extra_args.end());
  return args;
}

absl::Status InitEal(const EalOptions& options) {
  std::lock_guard<std::mutex> lock(eal_mu);
  if (eal_up) return absl::OkStatus();
  if (!eal_error.ok()) return eal_error;
  std::vector<std::string> args = EalArguments(options);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  cpu_set_t before;
  bool have_mask = sched_getaffinity(0, sizeof(before), &before) == 0;
  if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) {
    eal_error = absl::FailedPreconditionError(absl::StrCat(
        "DPDK EAL failed to start (", Err(rte_errno), ") with: ", absl::StrJoin(args, " "),
        "; check EalOptions (lcore must exist, memory_mb must fit) and shared/notes/dpdk.md"));
    return eal_error;
  }
  // EAL pinned this thread to one CPU; threads created later would inherit that. Undo it so the
  // fabric's idle policy, not a pin, decides where pollers run on a 2-core machine.
  if (!options.keep_pinning && have_mask) sched_setaffinity(0, sizeof(before), &before);
  // With --no-shconf nothing is ever stored in the runtime dir (/var/run/dpdk/<prefix>), but EAL
  // creates it; remove it while it is empty so runs do not pile up directories.
  rmdir(rte_eal_get_runtime_dir());
  eal_up = true;
  return absl::OkStatus();
}

bool EalInitialized() {
  std::lock_guard<std::mutex> lock(eal_mu);
  return eal_up;
}

absl::StatusOr<std::unique_ptr<DpdkPort>> DpdkPort::Open(const DpdkPortOptions& o) {
  if (!EalInitialized()) {
    return absl::FailedPreconditionError("DpdkPort::Open needs the EAL: call InitEal first");
  }
  std::vector<std::string> parts = absl::StrSplit(o.devargs, ',');
  if (parts.empty() || parts[0].empty()) {
    return absl::InvalidArgumentError(
        "DpdkPortOptions.devargs is empty; want e.g. net_memif0,role=server,socket=/path");
  }
  std::unique_ptr<DpdkPort> p(new DpdkPort());
  p->name_ = parts[0];
  bool memif_server = false, memif_client = false;
  std::string socket;
  for (const auto& kv : parts) {
    if (kv == "role=server") memif_server = true;
    if (kv == "role=client") memif_client = true;
    if (absl::StartsWith(kv, "socket=")) socket = kv.substr(7);
  }
  if (memif_server && !socket.empty()) {
    unlink(socket.c_str());  // a stale socket from a dead run makes the probe fail (EADDRINUSE)
    p->server_socket_ = socket;
  }
  int r = rte_dev_probe(o.devargs.c_str());
  if (r != 0) {
    return absl::InvalidArgumentError(absl::StrCat("DPDK could not create device '", o.devargs,
                                                   "' (", Err(r),
                                                   "); check the vdev name and arguments"));
  }
  if (rte_eth_dev_get_port_by_name(p->name_.c_str(), &p->port_) != 0) {
    rte_eal_hotplug_remove("vdev", p->name_.c_str());
    return absl::InternalError(absl::StrCat("device ", p->name_, " has no ethdev port"));
  }
  p->have_port_ = true;
  // From here on the destructor detaches the device.
  p->pool_ = rte_pktmbuf_pool_create(absl::StrCat("amf_", p->name_).c_str(), o.mbufs, 256, 0,
                                     o.mbuf_data_room + RTE_PKTMBUF_HEADROOM, rte_socket_id());
  if (p->pool_ == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "mbuf pool of ", o.mbufs, " x ", o.mbuf_data_room, " B failed (", Err(rte_errno),
        "); raise EalOptions.memory_mb or lower DpdkPortOptions.mbufs"));
  }
  rte_eth_dev_info info;
  if ((r = rte_eth_dev_info_get(p->port_, &info)) != 0) {
    return absl::InternalError(absl::StrCat("rte_eth_dev_info_get: ", Err(r)));
  }
  p->max_frame_ = info.max_rx_pktlen;
  rte_eth_conf conf;
  std::memset(&conf, 0, sizeof(conf));
  if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS) {
    conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
    p->multi_seg_ = true;
  }
  if ((r = rte_eth_dev_configure(p->port_, 1, 1, &conf)) != 0) {
    return absl::InternalError(absl::StrCat("rte_eth_dev_configure: ", Err(r)));
  }
  uint16_t rxd = o.rx_descriptors, txd = o.tx_descriptors;
  rte_eth_dev_adjust_nb_rx_tx_desc(p->port_, &rxd, &txd);
  if ((r = rte_eth_rx_queue_setup(p->port_, 0, rxd, rte_eth_dev_socket_id(p->port_), nullptr,
                                  p->pool_)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("Rx queue setup on ", p->name_, ": ", Err(r),
                     " (af_packet with framesz > mbuf_data_room needs a bigger "
                     "DpdkPortOptions.mbuf_data_room)"));
  }
  if ((r = rte_eth_tx_queue_setup(p->port_, 0, txd, rte_eth_dev_socket_id(p->port_), nullptr)) !=
      0) {
    return absl::InternalError(absl::StrCat("Tx queue setup: ", Err(r)));
  }
  absl::Time deadline = absl::Now() + o.link_timeout;
  // A memif client connects in dev_start and fails (EPERM) while the server's socket is absent.
  while ((r = rte_eth_dev_start(p->port_)) != 0) {
    if (!memif_client || absl::Now() > deadline) {
      return absl::InternalError(absl::StrCat("rte_eth_dev_start(", p->name_, "): ", Err(r),
                                              memif_client ? " (memif server not running?)" : ""));
    }
    usleep(20000);
  }
  p->started_ = true;
  rte_ether_addr mac;
  if (rte_eth_macaddr_get(p->port_, &mac) == 0) std::memcpy(p->mac_.data(), mac.addr_bytes, 6);
  absl::Time retry = absl::Now() + absl::Milliseconds(300);
  while (!p->LinkUp()) {
    // A memif client connects once, in dev_start. If it raced the server (socket not there yet,
    // or the server not started: "ID 0 not found"), nothing retries it: restart the port.
    if (memif_client && absl::Now() > retry) {
      rte_eth_dev_stop(p->port_);
      p->started_ = rte_eth_dev_start(p->port_) == 0;  // if not, try again next round
      retry = absl::Now() + absl::Milliseconds(300);
    }
    if (absl::Now() > deadline) {
      return absl::UnavailableError(absl::StrCat(
          "link of ", p->name_, " not up after ", absl::FormatDuration(o.link_timeout),
          " (memif: is the other role running on the same socket? af_packet: is the iface up?)"));
    }
    usleep(1000);
  }
  return p;
}

DpdkPort::~DpdkPort() {
  if (!have_port_) return;
  if (started_) rte_eth_dev_stop(port_);
  rte_eth_dev_info info;
  bool have_info = rte_eth_dev_info_get(port_, &info) == 0;
  rte_eth_dev_close(port_);
  if (have_info && info.device != nullptr) rte_dev_remove(info.device);
  if (pool_ != nullptr) rte_mempool_free(pool_);
  if (!server_socket_.empty()) unlink(server_socket_.c_str());
}

void DpdkPort::Stop() {
  if (!have_port_ || !started_) return;
  rte_eth_dev_stop(port_);
  started_ = false;
}

bool DpdkPort::LinkUp() const {
  rte_eth_link link;
  std::memset(&link, 0, sizeof(link));
  return rte_eth_link_get_nowait(port_, &link) == 0 && link.link_status == RTE_ETH_LINK_UP;
}

uint16_t DpdkPort::RxBurst(rte_mbuf** mbufs, uint16_t n) {
  return rte_eth_rx_burst(port_, 0, mbufs, n);
}

uint16_t DpdkPort::TxBurst(rte_mbuf** mbufs, uint16_t n) {
  return rte_eth_tx_burst(port_, 0, mbufs, n);
}

}  // namespace amalgam::fabric
