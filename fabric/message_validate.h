// The receive-side check of an authenticated Cap'n Proto body, one typed reader per message type
// (no reflection). Internal to //fabric:frame; ReceivedMessage::Parse is its only caller.
//
// What needs checking, and why only that: capnp readers bounds-check every access, so a scalar
// read never fails (fields past a short data section read as their defaults). Only following a
// pointer can fail: a pointer out of the segment, one of the wrong kind (a list where a struct
// is declared, a struct where Text is), Text without its NUL, or a traversal or nesting limit
// hit. Typed getters throw on those. So the validator follows every pointer of the active union
// member once, with its declared type (struct members, Text, Data, List(Member) and each
// element's Text); afterwards no typed read by a consumer can throw. The traversal limit of the
// validating reader is the body's own size in words, which refuses amplification (many pointers
// aimed at one big object); nesting is capped at 16 (the schema needs 4).
// The union tag must equal the frame header's `type` and name a member this node knows.
// Semantic sizes (the Hello nonce's 32 bytes, a VcpuState's length) are checked by the layer that
// owns their meaning (ParseHelloFrame, vcpu/), not here.
// Adding a pointer field to schema/messages.capnp means adding it here; message_validate_test
// finds, by reflection over the schema, every pointer field the validator misses.
// Thread-safety: reentrant.
#ifndef AMALGAM_FABRIC_MESSAGE_VALIDATE_H_
#define AMALGAM_FABRIC_MESSAGE_VALIDATE_H_

#include <cstdint>

#include "absl/status/status.h"
#include "fabric/schema/messages.capnp.h"

namespace amalgam::fabric {

// OK if `root` is safe to read with typed getters and its member is `header_type`;
// INVALID_ARGUMENT naming the problem otherwise. May throw kj::Exception (a malformed pointer):
// the caller treats that as invalid too.
absl::Status ValidateMessageBody(schema::Message::Reader root, uint16_t header_type);

}  // namespace amalgam::fabric

#endif  // AMALGAM_FABRIC_MESSAGE_VALIDATE_H_
