// The typed body validator against every message type's valid and malformed forms. The cases are
// generated from the schema by reflection (test-only), so a pointer field added to
// schema/messages.capnp without a check in message_validate.cc makes this test fail.
#include "fabric/message_validate.h"

#include <capnp/dynamic.h>
#include <capnp/message.h>
#include <capnp/schema.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "fabric/message.h"
#include "fabric/peer_session.h"

namespace amalgam::fabric {
namespace {

const FrameKey kKey = FrameKey::FromBytes({9, 8, 7});

// Frames `builder` (any root, member tag `type`) under a session and decodes it on the far side.
absl::StatusOr<ReceivedMessage> RoundTrip(capnp::MallocMessageBuilder& builder, uint16_t type,
                                          DropReason* why) {
  static uint64_t seq = 0;
  FlatMessage flat(builder);
  FrameHeader h;
  h.type = type;
  h.src = 1;
  h.dst = 2;
  h.seq = ++seq;
  EncodedFrame e;
  REQUIRE(EncodeFrame(kKey, h, flat.bytes(), {}, &e).ok());
  FrameBuffer buf = FrameBuffer::Allocate(e.size());
  e.CopyTo(buf.data());
  PeerSession rx(2, 1, kKey);
  return rx.Decode(std::move(buf), why);
}

bool IsPointer(capnp::StructSchema::Field f) {
  switch (f.getType().which()) {
    case capnp::schema::Type::TEXT:
    case capnp::schema::Type::DATA:
    case capnp::schema::Type::LIST:
    case capnp::schema::Type::STRUCT:
    case capnp::schema::Type::ANY_POINTER:
      return true;
    default:
      return false;
  }
}

capnp::AnyPointer::Builder Slot(capnp::DynamicStruct::Builder s, capnp::StructSchema::Field f) {
  return s.as<capnp::AnyStruct>().getPointerSection()[f.getProto().getSlot().getOffset()];
}

// A pointer of the wrong kind for `f`: a struct where Text, Data or a list is declared, a list
// where a struct is.
void PlantWrongKind(capnp::DynamicStruct::Builder s, capnp::StructSchema::Field f) {
  if (f.getType().isStruct()) {
    Slot(s, f).initAsAnyList(capnp::ElementSize::EIGHT_BYTES, 2);
  } else {
    Slot(s, f).initAsAnyStruct(1, 1);
  }
}

// Sets every pointer field of `s` to a well-formed value (lists get two elements, recursively).
void FillValid(capnp::DynamicStruct::Builder s) {
  for (auto f : s.getSchema().getNonUnionFields()) {
    switch (f.getType().which()) {
      case capnp::schema::Type::TEXT:
        s.set(f, capnp::Text::Reader("text"));
        break;
      case capnp::schema::Type::DATA: {
        static const uint8_t kBytes[kNonceSize] = {1};
        s.set(f, capnp::Data::Reader(kBytes, sizeof(kBytes)));
        break;
      }
      case capnp::schema::Type::LIST: {
        auto list = s.init(f, 2).as<capnp::DynamicList>();
        if (f.getType().asList().getElementType().isStruct()) {
          for (uint i = 0; i < list.size(); ++i) FillValid(list[i].as<capnp::DynamicStruct>());
        }
        break;
      }
      case capnp::schema::Type::STRUCT:
        FillValid(s.init(f).as<capnp::DynamicStruct>());
        break;
      default:
        break;
    }
  }
}

// A well-formed message whose member is `member`, then `mutate` applied to that member.
void Build(capnp::MallocMessageBuilder& b, capnp::StructSchema::Field member,
           const std::function<void(capnp::DynamicStruct::Builder)>& mutate) {
  auto root = b.initRoot<capnp::DynamicStruct>(capnp::Schema::from<schema::Message>());
  auto s = root.init(member).as<capnp::DynamicStruct>();
  FillValid(s);
  if (mutate) mutate(s);
}

uint16_t Tag(capnp::StructSchema::Field member) { return member.getProto().getDiscriminantValue(); }

// What a consumer does after Parse: typed reads of every pointer. Must not throw.
void ConsumerWalk(const ReceivedMessage& m) {
  auto root = m.message();
  switch (root.which()) {
    case schema::Message::JOIN_REPLY:
      for (auto member : root.getJoinReply().getMembers()) (void)member.getAddress().size();
      break;
    case schema::Message::VCPU_MIGRATE:
      (void)root.getVcpuMigrate().getState().size();
      break;
    case schema::Message::DEVICE_REPLY:
      (void)root.getDeviceReply().getError().size();
      break;
    default:
      break;
  }
}

}  // namespace

TEST_CASE("every message type: its valid form parses, every malformed pointer is a bad body") {
  int valid = 0, malformed = 0;
  for (auto member : capnp::Schema::from<schema::Message>().getUnionFields()) {
    const std::string name = member.getProto().getName();
    INFO("member " << name);
    {
      capnp::MallocMessageBuilder b;
      Build(b, member, nullptr);
      DropReason why = DropReason::kCount;
      auto m = RoundTrip(b, Tag(member), &why);
      REQUIRE(m.ok());
      CHECK(m->type() == static_cast<schema::Message::Which>(Tag(member)));
      CHECK_NOTHROW(ConsumerWalk(*m));
      ++valid;
    }
    {
      // The member's own struct pointer is a list.
      capnp::MallocMessageBuilder b;
      Build(b, member, nullptr);
      b.getRoot<capnp::AnyStruct>().getPointerSection()[0].initAsAnyList(
          capnp::ElementSize::EIGHT_BYTES, 1);
      DropReason why = DropReason::kCount;
      CHECK_FALSE(RoundTrip(b, Tag(member), &why).ok());
      CHECK(why == DropReason::kBadBody);
      ++malformed;
    }
    auto member_schema = member.getType().asStruct();
    for (auto f : member_schema.getNonUnionFields()) {
      if (!IsPointer(f)) continue;
      INFO("field " << f.getProto().getName().cStr());
      capnp::MallocMessageBuilder b;
      Build(b, member, [&](capnp::DynamicStruct::Builder s) { PlantWrongKind(s, f); });
      DropReason why = DropReason::kCount;
      CHECK_FALSE(RoundTrip(b, Tag(member), &why).ok());
      CHECK(why == DropReason::kBadBody);
      ++malformed;
      // Pointers inside list elements (JoinReply.members[i].address).
      if (!f.getType().isList() || !f.getType().asList().getElementType().isStruct()) continue;
      for (auto inner : f.getType().asList().getElementType().asStruct().getNonUnionFields()) {
        if (!IsPointer(inner)) continue;
        capnp::MallocMessageBuilder bl;
        Build(bl, member, [&](capnp::DynamicStruct::Builder s) {
          auto element = s.get(f).as<capnp::DynamicList>()[1].as<capnp::DynamicStruct>();
          PlantWrongKind(element, inner);
        });
        CHECK_FALSE(RoundTrip(bl, Tag(member), &why).ok());
        CHECK(why == DropReason::kBadBody);
        ++malformed;
      }
    }
  }
  CHECK(valid == 22);
  // Every pointer of the schema today: 1 per member, 14 member fields, 1 inside list elements.
  CHECK(malformed == 22 + 14 + 1);
}

TEST_CASE("Text without its NUL terminator is a bad body") {
  capnp::MallocMessageBuilder b;
  b.initRoot<schema::Message>().initLeave().setReason("unterminated");
  auto words = capnp::messageToFlatArray(b);
  auto bytes = words.asBytes();
  const char kText[] = "unterminated";
  auto* at = static_cast<uint8_t*>(memmem(bytes.begin(), bytes.size(), kText, sizeof(kText)));
  REQUIRE(at != nullptr);
  at[sizeof(kText) - 1] = 'x';  // the NUL
  FrameHeader h;
  h.type = static_cast<uint16_t>(schema::Message::LEAVE);
  h.src = 1;
  h.dst = 2;
  h.seq = 1;
  EncodedFrame e;
  REQUIRE(EncodeFrame(kKey, h, absl::MakeConstSpan(bytes.begin(), bytes.size()), {}, &e).ok());
  FrameBuffer buf = FrameBuffer::Allocate(e.size());
  e.CopyTo(buf.data());
  PeerSession rx(2, 1, kKey);
  DropReason why = DropReason::kCount;
  CHECK_FALSE(rx.Decode(std::move(buf), &why).ok());
  CHECK(why == DropReason::kBadBody);
}

TEST_CASE("a union member this node does not know is a bad body, even if the header agrees") {
  capnp::MallocMessageBuilder b;
  b.initRoot<schema::Message>().initPing();
  // The discriminant is the first 16 bits of the root's data section.
  auto data = b.getRoot<capnp::AnyStruct>().getDataSection();
  REQUIRE(data.size() >= 2);
  const uint16_t kUnknown = 200;
  data[0] = kUnknown & 0xff;
  data[1] = kUnknown >> 8;
  DropReason why = DropReason::kCount;
  CHECK_FALSE(RoundTrip(b, kUnknown, &why).ok());
  CHECK(why == DropReason::kBadBody);
}

TEST_CASE("ValidateMessageBody names the header/member mismatch") {
  capnp::MallocMessageBuilder b;
  b.initRoot<schema::Message>().initPing();
  auto s = ValidateMessageBody(b.getRoot<schema::Message>().asReader(),
                               static_cast<uint16_t>(schema::Message::PONG));
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(s.message()).find("header type") != std::string::npos);
  CHECK(ValidateMessageBody(b.getRoot<schema::Message>().asReader(),
                            static_cast<uint16_t>(schema::Message::PING))
            .ok());
}

}  // namespace amalgam::fabric
