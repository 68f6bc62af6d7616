#include "directory/protocol.h"

#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace amalgam::directory {

namespace {
auto Tie(const Message& m) {
  return std::tie(m.type, m.from, m.to, m.page, m.req_id, m.access, m.have_copy, m.state,
                  m.zero_fill, m.has_data, m.drop, m.requester);
}
}  // namespace

bool Message::operator==(const Message& o) const { return Tie(*this) == Tie(o); }

bool Action::operator==(const Action& o) const {
  return type == o.type && page == o.page && writable == o.writable && zero_fill == o.zero_fill &&
         message == o.message;
}

const char* ToString(Access a) { return a == Access::kRead ? "read" : "write"; }

const char* ToString(PageState s) {
  switch (s) {
    case PageState::kInvalid:
      return "I";
    case PageState::kShared:
      return "S";
    case PageState::kModified:
      return "M";
  }
  return "?";
}

const char* ToString(MessageType t) {
  switch (t) {
    case MessageType::kPageRequest:
      return "PageRequest";
    case MessageType::kPageGrant:
      return "PageGrant";
    case MessageType::kInvalidate:
      return "Invalidate";
    case MessageType::kInvalidateAck:
      return "InvalidateAck";
    case MessageType::kDowngrade:
      return "Downgrade";
    case MessageType::kWriteback:
      return "Writeback";
  }
  return "?";
}

const char* ToString(ActionType t) {
  switch (t) {
    case ActionType::kSend:
      return "Send";
    case ActionType::kInstallPage:
      return "InstallPage";
    case ActionType::kCopyOut:
      return "CopyOut";
    case ActionType::kMakeWritable:
      return "MakeWritable";
    case ActionType::kWriteProtect:
      return "WriteProtect";
    case ActionType::kDropPage:
      return "DropPage";
    case ActionType::kWakeVcpus:
      return "WakeVcpus";
    case ActionType::kStoreHomeCopy:
      return "StoreHomeCopy";
  }
  return "?";
}

std::string ToString(const Message& m) {
  std::string s =
      absl::StrFormat("%s %u->%u page=%u req=%u", ToString(m.type), m.from, m.to, m.page, m.req_id);
  switch (m.type) {
    case MessageType::kPageRequest:
      absl::StrAppend(&s, " ", ToString(m.access), m.have_copy ? " have_copy" : "");
      break;
    case MessageType::kPageGrant:
      absl::StrAppend(&s, " ", ToString(m.state), m.zero_fill ? " zero_fill" : "",
                      m.has_data ? " data" : "");
      break;
    case MessageType::kDowngrade:
      absl::StrAppend(&s, m.drop ? " hand-over" : " keep-shared");
      break;
    case MessageType::kWriteback:
      absl::StrAppend(&s, " keeps=", ToString(m.state), m.has_data ? " data" : "");
      break;
    default:
      break;
  }
  return s;
}

std::string ToString(const Action& a) {
  switch (a.type) {
    case ActionType::kSend:
      return absl::StrCat("Send(", ToString(a.message), ")");
    case ActionType::kInstallPage:
      return absl::StrFormat("InstallPage(page=%u %s%s)", a.page, a.writable ? "rw" : "ro",
                             a.zero_fill ? " zero" : "");
    default:
      return absl::StrFormat("%s(page=%u)", ToString(a.type), a.page);
  }
}

}  // namespace amalgam::directory
