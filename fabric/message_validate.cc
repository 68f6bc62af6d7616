#include "fabric/message_validate.h"

#include "absl/strings/str_cat.h"

namespace amalgam::fabric {
namespace {

// Each helper follows the pointers of one member type; the value is discarded, the point is that
// the getter ran (and threw if the pointer was bad). `size()` keeps the call from being elided.
template <typename T>
void Touch(const T& pointee) {
  volatile size_t n = pointee.size();
  (void)n;
}

void Check(schema::Hello::Reader m) {
  Touch(m.getNonce());
  Touch(m.getClusterName());
}
void Check(schema::Join::Reader m) { Touch(m.getCpuTemplate()); }
void Check(schema::JoinReply::Reader m) {
  Touch(m.getReason());
  for (schema::Member::Reader member : m.getMembers()) Touch(member.getAddress());
}
void Check(schema::Leave::Reader m) { Touch(m.getReason()); }
void Check(schema::PageNack::Reader m) { Touch(m.getReason()); }
void Check(schema::VcpuMigrate::Reader m) {
  Touch(m.getState());
  Touch(m.getReason());
}
void Check(schema::VcpuMigrateAck::Reader m) { Touch(m.getReason()); }
void Check(schema::DeviceRequest::Reader m) { Touch(m.getData()); }
void Check(schema::DeviceReply::Reader m) {
  Touch(m.getData());
  Touch(m.getError());
}
void Check(schema::RpcError::Reader m) { Touch(m.getMessage()); }
// Members without pointer fields: getting the struct pointer itself is the whole check.
template <typename R>
void Check(R) {}

}  // namespace

absl::Status ValidateMessageBody(schema::Message::Reader root, uint16_t header_type) {
  using W = schema::Message;
  const W::Which which = root.which();
  if (static_cast<uint16_t>(which) != header_type) {
    return absl::InvalidArgumentError(absl::StrCat("fabric frame body: header type ", header_type,
                                                   " but message holds member ",
                                                   static_cast<int>(which)));
  }
  switch (which) {
    case W::HELLO:
      Check(root.getHello());
      break;
    case W::JOIN:
      Check(root.getJoin());
      break;
    case W::JOIN_REPLY:
      Check(root.getJoinReply());
      break;
    case W::LEAVE:
      Check(root.getLeave());
      break;
    case W::HEARTBEAT:
      Check(root.getHeartbeat());
      break;
    case W::PAGE_REQUEST:
      Check(root.getPageRequest());
      break;
    case W::PAGE_GRANT:
      Check(root.getPageGrant());
      break;
    case W::PAGE_NACK:
      Check(root.getPageNack());
      break;
    case W::PAGE_FORWARD:
      Check(root.getPageForward());
      break;
    case W::INVALIDATE:
      Check(root.getInvalidate());
      break;
    case W::INVALIDATE_ACK:
      Check(root.getInvalidateAck());
      break;
    case W::DOWNGRADE:
      Check(root.getDowngrade());
      break;
    case W::WRITEBACK:
      Check(root.getWriteback());
      break;
    case W::DIRECTORY_ACK:
      Check(root.getDirectoryAck());
      break;
    case W::VCPU_MIGRATE:
      Check(root.getVcpuMigrate());
      break;
    case W::VCPU_MIGRATE_ACK:
      Check(root.getVcpuMigrateAck());
      break;
    case W::INTERRUPT:
      Check(root.getInterrupt());
      break;
    case W::DEVICE_REQUEST:
      Check(root.getDeviceRequest());
      break;
    case W::DEVICE_REPLY:
      Check(root.getDeviceReply());
      break;
    case W::PING:
      Check(root.getPing());
      break;
    case W::PONG:
      Check(root.getPong());
      break;
    case W::RPC_ERROR:
      Check(root.getRpcError());
      break;
    default:
      // A member added by a newer schema: this node cannot read it (and the protocol version
      // check should have kept that peer out).
      return absl::InvalidArgumentError(
          absl::StrCat("fabric frame body: unknown message member ", static_cast<int>(which)));
  }
  return absl::OkStatus();
}

}  // namespace amalgam::fabric
