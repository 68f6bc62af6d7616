// libFuzzer: ParseSetupHeader must never crash or read out of bounds, whatever the bytes; when
// it accepts an image, the fields it reports must be consistent with the image.
#include <cstdint>
#include <cstdlib>

#include "vmm/linux/boot_params.h"
#include "vmm/linux/setup_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace amalgam::vmm::linux_boot;
  absl::Span<const uint8_t> image(data, size);
  absl::StatusOr<SetupHeader> h = ParseSetupHeader(image);
  if (!h.ok()) return 0;
  if (h->setup_bytes + h->kernel_size != size || h->header_end > size ||
      h->kernel_size > h->init_size) {
    std::abort();
  }
  BootParamsFields fields;
  fields.e820 = {{0, 0x9fc00, E820Type::kRam}};
  absl::StatusOr<std::vector<uint8_t>> bp = BuildBootParams(image, *h, fields);
  if (!bp.ok() || bp->size() != kBootParamsSize) std::abort();
  return 0;
}
