#include "vmm/node/coherence_wire.h"

#include "absl/strings/str_cat.h"

namespace amalgam::vmm::node {
namespace {

namespace schema = fabric::schema;
using directory::Access;
using directory::MessageType;
using directory::PageState;

constexpr size_t kPage = 4096;

schema::PageState ToWire(PageState s) {
  switch (s) {
    case PageState::kShared:
      return schema::PageState::SHARED;
    case PageState::kModified:
      return schema::PageState::MODIFIED;
    case PageState::kInvalid:
      break;
  }
  return schema::PageState::INVALID;
}

absl::StatusOr<PageState> FromWire(schema::PageState s, const char* what) {
  switch (s) {
    case schema::PageState::INVALID:
      return PageState::kInvalid;
    case schema::PageState::SHARED:
      return PageState::kShared;
    case schema::PageState::MODIFIED:
      return PageState::kModified;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(what, ": unknown PageState ", static_cast<int>(s)));
}

absl::Status CheckPayload(const char* what, bool has_data, size_t payload_size) {
  size_t want = has_data ? kPage : 0;
  if (payload_size == want) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(what, ": payload of ", payload_size,
                                                 " bytes, expected ", want,
                                                 has_data ? " (hasData)" : " (no data)"));
}

}  // namespace

void BuildWire(const directory::Message& m, capnp::MessageBuilder* builder) {
  auto root = builder->initRoot<schema::Message>();
  switch (m.type) {
    case MessageType::kPageRequest: {
      auto r = root.initPageRequest();
      r.setPage(m.page);
      r.setAccess(m.access == Access::kWrite ? schema::PageAccess::WRITE
                                             : schema::PageAccess::READ);
      r.setRequester(m.requester);
      r.setReqId(m.req_id);
      r.setHaveCopy(m.have_copy);
      return;
    }
    case MessageType::kPageGrant: {
      auto g = root.initPageGrant();
      g.setPage(m.page);
      g.setState(ToWire(m.state));
      g.setZeroFill(m.zero_fill);
      g.setHasData(m.has_data);
      g.setReqId(m.req_id);
      g.setAcksExpected(0);
      return;
    }
    case MessageType::kInvalidate: {
      auto i = root.initInvalidate();
      i.setPage(m.page);
      i.setReqId(m.req_id);
      i.setRequester(m.requester);
      i.setAckTo(m.from);  // acks always go to the home
      return;
    }
    case MessageType::kInvalidateAck: {
      auto a = root.initInvalidateAck();
      a.setPage(m.page);
      a.setReqId(m.req_id);
      a.setFrom(m.from);
      return;
    }
    case MessageType::kDowngrade: {
      auto d = root.initDowngrade();
      d.setPage(m.page);
      d.setReqId(m.req_id);
      d.setDrop(m.drop);
      return;
    }
    case MessageType::kWriteback: {
      auto w = root.initWriteback();
      w.setPage(m.page);
      w.setReqId(m.req_id);
      w.setHasData(m.has_data);
      w.setDirty(true);
      w.setNewState(ToWire(m.state));
      return;
    }
  }
}

void BuildSeed(directory::PageNumber page, capnp::MessageBuilder* builder) {
  auto w = builder->initRoot<schema::Message>().initWriteback();
  w.setPage(page);
  w.setReqId(0);
  w.setHasData(true);
  w.setDirty(false);
  w.setNewState(schema::PageState::INVALID);
}

bool IsCoherence(schema::Message::Which which) {
  switch (which) {
    case schema::Message::PAGE_REQUEST:
    case schema::Message::PAGE_GRANT:
    case schema::Message::INVALIDATE:
    case schema::Message::INVALIDATE_ACK:
    case schema::Message::DOWNGRADE:
    case schema::Message::WRITEBACK:
      return true;
    default:
      return false;
  }
}

absl::StatusOr<WireMessage> ParseWire(schema::Message::Reader reader, directory::NodeId from,
                                      directory::NodeId to, size_t payload_size) {
  WireMessage w;
  directory::Message& m = w.message;
  m.from = from;
  m.to = to;
  switch (reader.which()) {
    case schema::Message::PAGE_REQUEST: {
      auto r = reader.getPageRequest();
      m.type = MessageType::kPageRequest;
      m.page = r.getPage();
      if (r.getAccess() != schema::PageAccess::READ && r.getAccess() != schema::PageAccess::WRITE) {
        return absl::InvalidArgumentError("PageRequest: unknown access");
      }
      m.access = r.getAccess() == schema::PageAccess::WRITE ? Access::kWrite : Access::kRead;
      m.requester = r.getRequester();
      m.req_id = r.getReqId();
      m.have_copy = r.getHaveCopy();
      if (absl::Status s = CheckPayload("PageRequest", false, payload_size); !s.ok()) return s;
      return w;
    }
    case schema::Message::PAGE_GRANT: {
      auto g = reader.getPageGrant();
      m.type = MessageType::kPageGrant;
      m.page = g.getPage();
      absl::StatusOr<PageState> st = FromWire(g.getState(), "PageGrant");
      if (!st.ok()) return st.status();
      m.state = *st;
      m.zero_fill = g.getZeroFill();
      m.has_data = g.getHasData();
      m.req_id = g.getReqId();
      if (g.getAcksExpected() != 0) {
        return absl::InvalidArgumentError("PageGrant: acksExpected must be 0 (acks go home)");
      }
      if (absl::Status s = CheckPayload("PageGrant", m.has_data, payload_size); !s.ok()) return s;
      return w;
    }
    case schema::Message::INVALIDATE: {
      auto i = reader.getInvalidate();
      m.type = MessageType::kInvalidate;
      m.page = i.getPage();
      m.req_id = i.getReqId();
      m.requester = i.getRequester();
      if (i.getAckTo() != from) {
        return absl::InvalidArgumentError("Invalidate: ackTo must be the sending home");
      }
      if (absl::Status s = CheckPayload("Invalidate", false, payload_size); !s.ok()) return s;
      return w;
    }
    case schema::Message::INVALIDATE_ACK: {
      auto a = reader.getInvalidateAck();
      m.type = MessageType::kInvalidateAck;
      m.page = a.getPage();
      m.req_id = a.getReqId();
      if (a.getFrom() != from) {
        return absl::InvalidArgumentError("InvalidateAck: from differs from the frame's sender");
      }
      if (absl::Status s = CheckPayload("InvalidateAck", false, payload_size); !s.ok()) return s;
      return w;
    }
    case schema::Message::DOWNGRADE: {
      auto d = reader.getDowngrade();
      m.type = MessageType::kDowngrade;
      m.page = d.getPage();
      m.req_id = d.getReqId();
      m.drop = d.getDrop();
      if (absl::Status s = CheckPayload("Downgrade", false, payload_size); !s.ok()) return s;
      return w;
    }
    case schema::Message::WRITEBACK: {
      auto b = reader.getWriteback();
      m.type = MessageType::kWriteback;
      m.page = b.getPage();
      m.req_id = b.getReqId();
      m.has_data = b.getHasData();
      absl::StatusOr<PageState> st = FromWire(b.getNewState(), "Writeback");
      if (!st.ok()) return st.status();
      m.state = *st;
      if (!b.getDirty()) {
        if (m.req_id != 0 || !m.has_data || m.state != PageState::kInvalid) {
          return absl::InvalidArgumentError(
              "Writeback with dirty=false (a seed) must have reqId 0, data and newState invalid");
        }
        w.seed = true;
      }
      if (absl::Status s = CheckPayload("Writeback", m.has_data, payload_size); !s.ok()) return s;
      return w;
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "message type ", static_cast<int>(reader.which()), " is not a coherence message"));
  }
}

const char* WireTypeName(const WireMessage& w) {
  return w.seed ? "Seed" : directory::ToString(w.message.type);
}

}  // namespace amalgam::vmm::node
