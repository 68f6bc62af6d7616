#include "vmm/virtio_devices/virtio_devices.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "virtio/block/block_backend.h"
#include "virtio/block/block_device.h"
#include "virtio/console/console_device.h"
#include "virtio/net/net_backend.h"
#include "virtio/net/net_device.h"
#include "virtio/rng/rng_device.h"

namespace amalgam::vmm::virtio_devices {
namespace {

constexpr size_t kMaxDevices = sizeof(kGsis) / sizeof(kGsis[0]);

// vcpu::Bus speaks BusDevice; the transport (which must not know vcpu/) speaks the same shape.
class TransportOnBus : public vcpu::BusDevice {
 public:
  explicit TransportOnBus(std::shared_ptr<virtio::MmioTransport> t) : t_(std::move(t)) {}
  void Read(uint64_t offset, absl::Span<uint8_t> data) override { t_->Read(offset, data); }
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override { t_->Write(offset, data); }

 private:
  std::shared_ptr<virtio::MmioTransport> t_;
};

class SinkAdapter : public virtio::console::ConsoleSink {
 public:
  explicit SinkAdapter(std::shared_ptr<devices::ByteSink> sink) : sink_(std::move(sink)) {}
  void Write(absl::Span<const uint8_t> bytes) override {
    if (sink_) sink_->Write(bytes);
  }

 private:
  std::shared_ptr<devices::ByteSink> sink_;
};

}  // namespace

// An eventfd registered with KVM_IRQFD: writing it pulses the GSI inside the kernel.
class VirtioDevices::IrqfdLine : public virtio::InterruptLine {
 public:
  IrqfdLine(vcpu::Vm* vm, int fd, uint32_t gsi) : vm_(vm), fd_(fd), gsi_(gsi) {}
  ~IrqfdLine() override {
    (void)vm_->UnregisterIrqfd(fd_, gsi_);
    close(fd_);
  }
  void Trigger() override {
    const uint64_t one = 1;
    // EAGAIN means the counter is saturated: an interrupt is pending anyway.
    (void)!write(fd_, &one, sizeof(one));
  }

 private:
  vcpu::Vm* vm_;
  int fd_;
  uint32_t gsi_;
};

absl::StatusOr<DiskSpec> ParseDiskFlag(absl::string_view value) {
  std::vector<absl::string_view> parts = absl::StrSplit(value, ',');
  DiskSpec spec;
  spec.path = std::string(parts[0]);
  if (spec.path.empty()) {
    return absl::InvalidArgumentError("--disk needs a file: --disk PATH[,ro]");
  }
  for (size_t i = 1; i < parts.size(); ++i) {
    if (parts[i] == "ro") {
      spec.read_only = true;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--disk ", value, ": unknown option '", parts[i], "' (only 'ro')"));
    }
  }
  return spec;
}

absl::StatusOr<NetSpec> ParseNetFlag(absl::string_view value) {
  NetSpec spec;
  for (absl::string_view part : absl::StrSplit(value, ',')) {
    if (absl::ConsumePrefix(&part, "tap=")) {
      spec.tap = std::string(part);
    } else if (absl::ConsumePrefix(&part, "mac=")) {
      std::vector<absl::string_view> bytes = absl::StrSplit(part, ':');
      bool ok = bytes.size() == 6;
      for (size_t i = 0; ok && i < 6; ++i) {
        ok = bytes[i].size() == 2 && isxdigit(bytes[i][0]) && isxdigit(bytes[i][1]);
        if (ok)
          spec.mac[i] = static_cast<uint8_t>(strtoul(std::string(bytes[i]).c_str(), nullptr, 16));
      }
      if (!ok || (spec.mac[0] & 1)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--net ", value, ": mac must be a unicast aa:bb:cc:dd:ee:ff"));
      }
      spec.mac_given = true;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("--net ", value, ": unknown option '", part,
                                                     "' (use --net tap=NAME[,mac=...])"));
    }
  }
  if (spec.tap.empty()) {
    return absl::InvalidArgumentError("--net needs a tap: --net tap=NAME[,mac=...]");
  }
  return spec;
}

absl::StatusOr<std::unique_ptr<VirtioDevices>> VirtioDevices::Create(const VirtioOptions& options) {
  std::unique_ptr<VirtioDevices> v(new VirtioDevices());
  v->use_ioeventfd_ = options.ioeventfd;
  for (const DiskSpec& disk : options.disks) {
    v->ids_.push_back(disk.id.empty() ? absl::StrCat("disk", v->ids_.size()) : disk.id);
    v->details_.push_back(disk.read_only ? disk.path + " (read-only)" : disk.path);
    auto backend = virtio::block::FileBackend::Open(disk.path, disk.read_only);
    if (!backend.ok()) {
      return absl::Status(backend.status().code(),
                          absl::StrCat("--disk: ", backend.status().message()));
    }
    if ((*backend)->size_bytes() < virtio::block::kSectorSize) {
      return absl::InvalidArgumentError(
          absl::StrCat("--disk ", disk.path, " is smaller than one 512-byte sector"));
    }
    v->pending_.push_back(std::make_unique<virtio::block::BlockDevice>(std::move(*backend)));
    v->kinds_.push_back("block");
    v->rx_fds_.push_back(-1);
  }
  for (size_t i = 0; i < options.nets.size(); ++i) {
    NetSpec net = options.nets[i];
    v->ids_.push_back(net.id.empty() ? absl::StrCat("net", i) : net.id);
    v->details_.push_back("tap " + net.tap);
    auto tap = virtio::net::TapBackend::Open(net.tap);
    if (!tap.ok()) return tap.status();
    if (!net.mac_given) net.mac[5] = static_cast<uint8_t>(i);
    const int fd = (*tap)->pollable_fd();
    v->pending_.push_back(std::make_unique<virtio::net::NetDevice>(std::move(*tap), net.mac));
    v->kinds_.push_back("net");
    v->rx_fds_.push_back(fd);
  }
  if (options.rng) {
    auto src = virtio::rng::UrandomSource::Open();
    if (!src.ok()) {
      return absl::Status(src.status().code(), absl::StrCat("--rng: ", src.status().message()));
    }
    v->pending_.push_back(std::make_unique<virtio::rng::RngDevice>(std::move(*src)));
    v->ids_.push_back(options.rng_id);
    v->details_.push_back("/dev/urandom");
    v->kinds_.push_back("rng");
    v->rx_fds_.push_back(-1);
  }
  if (options.console) {
    v->pending_.push_back(std::make_unique<virtio::console::ConsoleDevice>(
        std::make_shared<SinkAdapter>(options.console_out)));
    v->ids_.push_back(options.console_id);
    v->details_.push_back("output with the serial port's");
    v->kinds_.push_back("console");
    v->rx_fds_.push_back(-1);
  }
  if (v->pending_.size() > kMaxDevices) {
    return absl::InvalidArgumentError(
        absl::StrCat("too many virtio devices (", v->pending_.size(), "); at most ", kMaxDevices));
  }
  return v;
}

VirtioDevices::~VirtioDevices() {
  pump_.reset();  // stop poking before the transports go
  if (bus_ != nullptr) {
    for (const AttachedDevice& d : attached_) (void)bus_->Remove(d.base);
  }
  transports_.clear();  // before the irqfds they signal
  irqs_.clear();
  for (const vcpu::Vm::IoeventfdSpec& spec : ioeventfds_) {
    (void)vm_->UnregisterIoeventfd(spec);
    close(spec.eventfd);
  }
}

std::string VirtioDevices::KernelCmdline() const {
  std::vector<std::string> words;
  for (size_t i = 0; i < kinds_.size(); ++i) {
    words.push_back(absl::StrCat("virtio_mmio.device=", virtio::kMmioSize, "@0x",
                                 absl::Hex(kMmioBase + i * kMmioStride), ":", kGsis[i]));
  }
  return absl::StrJoin(words, " ");
}

std::vector<acpi::MmioDevice> VirtioDevices::AcpiDevices() const {
  std::vector<acpi::MmioDevice> out;
  for (size_t i = 0; i < kinds_.size(); ++i) {
    acpi::MmioDevice d;
    d.base = kMmioBase + i * kMmioStride;
    d.size = virtio::kMmioSize;
    d.gsi = kGsis[i];
    d.level_triggered = false;
    out.push_back(d);
  }
  return out;
}

absl::Status VirtioDevices::Attach(memory::GuestMemory* memory, vcpu::Vm* vm, vcpu::Bus* mmio_bus) {
  if (!attached_.empty() || pending_.size() != kinds_.size()) {
    return absl::FailedPreconditionError("VirtioDevices::Attach called twice");
  }
  bus_ = mmio_bus;
  vm_ = vm;
  pump_ = std::make_unique<RxPump>();
  for (size_t i = 0; i < pending_.size(); ++i) {
    const int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0) return absl::InternalError(absl::StrCat("eventfd: ", strerror(errno)));
    if (absl::Status s = vm->RegisterIrqfd(fd, kGsis[i]); !s.ok()) {
      close(fd);
      return s;
    }
    irqs_.push_back(std::make_unique<IrqfdLine>(vm, fd, kGsis[i]));
    const size_t num_queues = pending_[i]->queue_max_sizes().size();
    auto transport =
        std::make_shared<virtio::MmioTransport>(std::move(pending_[i]), memory, irqs_.back().get());
    const uint64_t base = kMmioBase + i * kMmioStride;
    if (absl::Status s =
            mmio_bus->Insert(std::make_shared<TransportOnBus>(transport), base, virtio::kMmioSize);
        !s.ok()) {
      return s;
    }
    attached_.push_back({ids_[i], kinds_[i], details_[i], base, kGsis[i], transport.get()});
    if (rx_fds_[i] >= 0) pump_->Add(rx_fds_[i], transport.get(), 0);
    for (uint32_t q = 0; use_ioeventfd_ && q < num_queues; ++q) {
      vcpu::Vm::IoeventfdSpec spec;
      spec.eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      if (spec.eventfd < 0) return absl::InternalError(absl::StrCat("eventfd: ", strerror(errno)));
      spec.addr = base + virtio::kRegQueueNotify;
      spec.len = 4;
      spec.datamatch = q;
      if (absl::Status s = vm->RegisterIoeventfd(spec); !s.ok()) {
        close(spec.eventfd);
        return s;
      }
      ioeventfds_.push_back(spec);
      pump_->Add(spec.eventfd, transport.get(), q, /*drain=*/true);
    }
    transports_.push_back(std::move(transport));
  }
  pending_.clear();
  return pump_->Start();
}

}  // namespace amalgam::vmm::virtio_devices
