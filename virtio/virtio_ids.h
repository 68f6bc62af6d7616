// Constants of the virtio 1.x specification used by the transport and the devices.
// Thread-safety: constants only.
#ifndef AMALGAM_VIRTIO_VIRTIO_IDS_H_
#define AMALGAM_VIRTIO_VIRTIO_IDS_H_

#include <cstdint>

namespace amalgam::virtio {

// Device IDs (virtio 1.x section 5).
inline constexpr uint32_t kDeviceIdNet = 1;
inline constexpr uint32_t kDeviceIdBlock = 2;
inline constexpr uint32_t kDeviceIdConsole = 3;
inline constexpr uint32_t kDeviceIdRng = 4;

// Reserved feature bits (section 6), as bit numbers.
inline constexpr int kFeatureRingIndirectDesc = 28;
inline constexpr int kFeatureRingEventIdx = 29;
inline constexpr int kFeatureVersion1 = 32;

inline constexpr uint64_t FeatureBit(int bit) { return uint64_t{1} << bit; }

// Device status bits (section 2.1).
inline constexpr uint32_t kStatusAcknowledge = 1;
inline constexpr uint32_t kStatusDriver = 2;
inline constexpr uint32_t kStatusDriverOk = 4;
inline constexpr uint32_t kStatusFeaturesOk = 8;
inline constexpr uint32_t kStatusDeviceNeedsReset = 64;
inline constexpr uint32_t kStatusFailed = 128;

// Split virtqueue descriptor flags (section 2.7.5).
inline constexpr uint16_t kDescFlagNext = 1;
inline constexpr uint16_t kDescFlagWrite = 2;
inline constexpr uint16_t kDescFlagIndirect = 4;

// Ring flags.
inline constexpr uint16_t kAvailFlagNoInterrupt = 1;
inline constexpr uint16_t kUsedFlagNoNotify = 1;

}  // namespace amalgam::virtio

#endif  // AMALGAM_VIRTIO_VIRTIO_IDS_H_
