// Vocabulary of the coherence protocol: node ids, pages, the messages nodes exchange and the
// actions the state machines ask the node runtime to perform. Plain values, no I/O.
//
// Thread-safety: plain value types. Ownership: values, copied freely.
// Every message maps one-to-one onto a member of fabric/schema/messages.capnp (see README.md).
#ifndef AMALGAM_DIRECTORY_PROTOCOL_H_
#define AMALGAM_DIRECTORY_PROTOCOL_H_

#include <cstdint>
#include <string>

namespace amalgam::directory {

// Same width as the fabric's node ids (`UInt32`).
using NodeId = uint32_t;
// Guest page frame number: guest-physical address >> 12 (fabric `page :UInt64`).
using PageNumber = uint64_t;

// Sharer sets are 64-bit masks, so a cluster has at most this many nodes.
inline constexpr uint32_t kMaxNodes = 64;
inline constexpr NodeId kNoNode = 0xffffffffu;

// fabric PageAccess.
enum class Access : uint8_t { kRead = 0, kWrite = 1 };

// fabric PageState: what a node holds (stable states only).
enum class PageState : uint8_t { kInvalid = 0, kShared = 1, kModified = 2 };

enum class MessageType : uint8_t {
  kPageRequest,    // node -> home: read miss, write miss or upgrade
  kPageGrant,      // home -> requester: Shared or Modified, with data, zero-fill, or neither
  kInvalidate,     // home -> sharer: drop your read-only copy
  kInvalidateAck,  // sharer -> home
  kDowngrade,      // home -> owner: protect, write back, keep Shared (drop=false) or hand over
  kWriteback,      // owner -> home: the page's data, after Downgrade or on eviction
};

// One protocol message. Only the fields named for its type are meaningful; the others stay at
// their defaults so that messages compare and hash by value.
struct Message {
  MessageType type = MessageType::kPageRequest;
  NodeId from = kNoNode;
  NodeId to = kNoNode;
  PageNumber page = 0;
  // Names one directory transaction: chosen by the requester, echoed by everything the home
  // sends for that request and by the replies to those. 0 on an eviction writeback.
  uint64_t req_id = 0;
  Access access = Access::kRead;          // kPageRequest
  bool have_copy = false;                 // kPageRequest: requester still holds a Shared copy
  PageState state = PageState::kInvalid;  // kPageGrant: granted; kWriteback: what sender keeps
  bool zero_fill = false;                 // kPageGrant: never written, install zeros, no payload
  bool has_data = false;                  // kPageGrant, kWriteback: a 4 KiB payload travels along
  bool drop = false;                      // kDowngrade: hand-over, the owner ends Invalid
  NodeId requester = kNoNode;             // kPageRequest, kInvalidate: who asked

  bool operator==(const Message& o) const;
  bool operator!=(const Message& o) const { return !(*this == o); }
};

// What the node runtime must do, in order. The order is part of the contract: the userfaultfd
// rules (write-protect before copying out, copy out before dropping) are encoded in it.
enum class ActionType : uint8_t {
  // Send `message`. If message.has_data the runtime attaches the payload: for a kWriteback, the
  // buffer filled by the preceding kCopyOut; for a kPageGrant, the home's backing copy.
  kSend,
  // Copy the local guest page into the outgoing payload buffer (for the kWriteback that follows).
  // Always after kWriteProtect, so no guest store can slip in after the copy.
  kCopyOut,
  // UFFDIO_COPY the payload of the message being handled (or a zero page when zero_fill) into
  // the page; with UFFDIO_COPY_MODE_WP unless `writable`. Use DONTWAKE: kWakeVcpus follows.
  kInstallPage,
  kMakeWritable,  // UFFDIO_WRITEPROTECT with mode 0 (clear protection).
  kWriteProtect,  // UFFDIO_WRITEPROTECT with MODE_WP: later guest writes fault.
  kDropPage,      // MADV_REMOVE (memfd) / MADV_DONTNEED (anonymous): later accesses fault.
  kWakeVcpus,     // UFFDIO_WAKE on the page: vCPUs blocked on it retry their access.
  // Home only: store the payload of the kWriteback being handled as the home's backing copy.
  kStoreHomeCopy,
};

struct Action {
  ActionType type = ActionType::kSend;
  PageNumber page = 0;
  bool writable = false;   // kInstallPage
  bool zero_fill = false;  // kInstallPage
  Message message;         // kSend

  bool operator==(const Action& o) const;
  bool operator!=(const Action& o) const { return !(*this == o); }
};

const char* ToString(Access a);
const char* ToString(PageState s);
const char* ToString(MessageType t);
const char* ToString(ActionType t);
std::string ToString(const Message& m);
std::string ToString(const Action& a);

}  // namespace amalgam::directory

#endif  // AMALGAM_DIRECTORY_PROTOCOL_H_
