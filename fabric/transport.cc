#include "fabric/transport.h"

#include "absl/strings/str_cat.h"

namespace amalgam::fabric {

std::string TransportStats::ToString() const {
  return absl::StrCat("sent=", frames_sent, " received=", frames_received,
                      " bytes_sent=", bytes_sent, " bytes_received=", bytes_received,
                      " connects=", connects, " disconnects=", disconnects,
                      " drops: ", drops.ToString());
}

absl::Status Transport::Send(NodeId dst, capnp::MessageBuilder& message,
                             absl::Span<const uint8_t> page, const SendOptions& options) {
  FlatMessage flat(message);
  return SendFrame(dst, flat.Frame(page, options.rpc_id, options.flags));
}

}  // namespace amalgam::fabric
