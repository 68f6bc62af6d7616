// Translation between directory::Message (the protocol's vocabulary) and the fabric's Cap'n Proto
// schema::Message (directory/README.md, "Messages -> fabric"), plus the boot-time seed message:
// a Writeback with dirty = false and reqId 0 carries a page the boot node's loader wrote to its
// home before the guest starts (HomeDirectory::Seed).
// Thread-safety: pure functions. Ownership: values only.
#ifndef AMALGAM_VMM_NODE_COHERENCE_WIRE_H_
#define AMALGAM_VMM_NODE_COHERENCE_WIRE_H_

#include <capnp/message.h>

#include "absl/status/statusor.h"
#include "directory/protocol.h"
#include "fabric/schema/messages.capnp.h"

namespace amalgam::vmm::node {

struct WireMessage {
  bool seed = false;           // a boot-time seed (page and from/to only)
  directory::Message message;  // the protocol message (or the seed's page/from/to)
};

// Fills `builder`'s schema::Message root with `m` (from/to travel in the frame header).
void BuildWire(const directory::Message& m, capnp::MessageBuilder* builder);
// The seed of `page` (the 4 KiB page travels as the frame's payload).
void BuildSeed(directory::PageNumber page, capnp::MessageBuilder* builder);

// True for the message types this runtime handles (the six protocol messages).
bool IsCoherence(fabric::schema::Message::Which which);

// Parses a received coherence message; `from`/`to` come from the authenticated frame header.
// `payload_size` is the frame's payload length: it must be 4096 exactly when the message says
// data travels (grants and writebacks with hasData, seeds) and 0 otherwise. INVALID_ARGUMENT
// names what is wrong (unknown enum value, inconsistent fields, payload size, not coherence).
absl::StatusOr<WireMessage> ParseWire(fabric::schema::Message::Reader reader,
                                      directory::NodeId from, directory::NodeId to,
                                      size_t payload_size);

// Short type name used in metric names: "PageRequest", "PageGrant", ..., "Seed".
const char* WireTypeName(const WireMessage& w);

}  // namespace amalgam::vmm::node

#endif  // AMALGAM_VMM_NODE_COHERENCE_WIRE_H_
