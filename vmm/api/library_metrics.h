// Metrics sources for the counters the libraries keep themselves, in the API's naming
// (`amalgam_<library>_<what>_total`, labels for the instance): the userfaultfd page-fault
// service (memory/), a fabric transport and fabric drop counters (fabric/), counters of the
// directory/ placement policy, and virtio-mmio devices (virtio/). Register them with the
// controller's MetricsRegistry (ControlPlane::controller().metrics_registry()).
// Ownership: each source borrows the object it reads, which must outlive its registration
// (use ScopedMetricsSource next to the object). Thread-safety: the sources are as thread-safe
// as the reads they make (all of those below are).
#ifndef AMALGAM_VMM_API_LIBRARY_METRICS_H_
#define AMALGAM_VMM_API_LIBRARY_METRICS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "fabric/drop_counters.h"
#include "fabric/transport.h"
#include "memory/page_fault_service.h"
#include "virtio/mmio.h"
#include "vmm/api/metrics_source.h"

namespace amalgam::vmm::api {

// memory/: PageFaultService::Metrics() as `amalgam_memory_uffd_<counter>_total`; the latency
// histogram as `amalgam_memory_uffd_fault_service_faults_total{bucket_us="N"}` (faults resolved
// in (N/2, N] microseconds; "inf" for the rest).
std::shared_ptr<MetricsSource> PageFaultServiceMetrics(const memory::PageFaultService* service,
                                                       MetricLabels labels = {});

// fabric/: Transport::GetStats() as `amalgam_fabric_{frames,bytes}_{sent,received}_total`,
// `amalgam_fabric_{connects,disconnects}_total` and
// `amalgam_fabric_dropped_frames_total{reason=...}` (every reason, zeros included).
std::shared_ptr<MetricsSource> TransportMetrics(const fabric::Transport* transport,
                                                MetricLabels labels = {});
// fabric/: drop counters kept outside a transport (e.g. RpcChannel's late replies), as
// `amalgam_fabric_dropped_frames_total{reason=...}` plus `labels` (tell them apart, e.g.
// {"layer", "rpc"}).
std::shared_ptr<MetricsSource> DropCountersMetrics(const fabric::DropCounters* drops,
                                                   MetricLabels labels);

// directory/: the placement policy is not thread-safe, so its owner passes a function that
// reads PlacementPolicy::Stats() (or any (name, value) counters) under its own lock; samples
// are `amalgam_directory_<name>_total`.
using NamedCounters = std::vector<std::pair<std::string, uint64_t>>;
std::shared_ptr<MetricsSource> DirectoryMetrics(std::function<NamedCounters()> read,
                                                MetricLabels labels = {});

// virtio/: one device's transport and device counters (MmioTransport::Counters) as
// `amalgam_virtio_<counter>_total{device=id, kind=kind}`.
void AppendVirtioMetrics(const virtio::MmioTransport& transport, const std::string& id,
                         const std::string& kind, MetricSamples* out);

}  // namespace amalgam::vmm::api

#endif  // AMALGAM_VMM_API_LIBRARY_METRICS_H_
