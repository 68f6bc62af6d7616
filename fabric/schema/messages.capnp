# Every node-to-node message of amalgam. One frame carries one `Message`; a 4 KiB page, when a
# message has one, travels as the frame's raw payload beside this body (never inside it), so the
# receiver can install it straight from the receive buffer.
#
# Compatibility: fields may only be added (Cap'n Proto rules). A change that an old node cannot
# ignore bumps `protocolVersion`; `Hello` carries it and a node refuses a peer that speaks another.
# The frame header's `type` field is the ordinal of the `Message` union member (see frame.h).
@0xe411cc103bf8f845;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("amalgam::fabric::schema");

const protocolVersion :UInt32 = 1;

# ---- membership -------------------------------------------------------------------------------

struct Hello {
  # First message on every connection or link, authenticated with the cluster key itself. Both
  # sides send one; the session key of the link is derived from both nonces (see README.md).
  protocolVersion @0 :UInt32;
  nodeId @1 :UInt32;
  nonce @2 :Data;              # 32 random bytes, fresh per connection
  clusterName @3 :Text;        # informational; the key is what admits a peer
}

struct Join {
  # A node asks the cluster to take it in (sent to the coordinator after Hello).
  nodeId @0 :UInt32;
  memoryBytes @1 :UInt64;      # RAM this node can back
  vcpus @2 :UInt32;            # host CPUs it offers
  cpuTemplate @3 :Text;        # the CPU template it can run (must match the cluster's)
}

struct Member {
  nodeId @0 :UInt32;
  address @1 :Text;            # how to reach it, e.g. "10.0.0.2:7000"
}

struct JoinReply {
  accepted @0 :Bool;
  reason @1 :Text;             # why not, when refused
  epoch @2 :UInt64;            # membership epoch the node joins at
  members @3 :List(Member);
}

struct Leave {
  nodeId @0 :UInt32;
  reason @1 :Text;
}

struct Heartbeat {
  nodeId @0 :UInt32;
  epoch @1 :UInt64;            # membership epoch the sender believes in
  sentNs @2 :UInt64;           # sender's monotonic clock (for RTT, not for ordering)
}

# ---- distributed memory (directory protocol) --------------------------------------------------
# Pages are guest page frame numbers (GPA >> 12). `reqId` names one directory transaction so the
# messages of a request (forward, invalidations, acks, grant) can be matched to it.

enum PageAccess {
  read @0;                     # wants Shared
  write @1;                    # wants Modified
}

enum PageState {
  invalid @0;
  shared @1;
  modified @2;
}

struct PageRequest {
  # Node -> home: a read miss or a write (upgrade) fault.
  page @0 :UInt64;
  access @1 :PageAccess;
  requester @2 :UInt32;
  reqId @3 :UInt64;
  haveCopy @4 :Bool;           # requester holds a Shared copy (upgrade: no data needed)
}

struct PageGrant {
  # Home (or the previous owner) -> requester. Carries the page as payload when `hasData`.
  page @0 :UInt64;
  state @1 :PageState;
  zeroFill @2 :Bool;           # never written: install zeros, no payload on the wire
  hasData @3 :Bool;
  reqId @4 :UInt64;
  acksExpected @5 :UInt32;     # invalidation acks the requester must still collect (0: none)
  version @6 :UInt64;          # directory's write version of the page (debugging, checks)
}

struct PageNack {
  # Home -> requester: busy (transient state) or refused; retry after the hint.
  page @0 :UInt64;
  reqId @1 :UInt64;
  reason @2 :Text;
  retryAfterUs @3 :UInt32;
}

struct PageForward {
  # Home -> current owner: send the page to `requester` (and downgrade or hand over).
  page @0 :UInt64;
  access @1 :PageAccess;       # read: owner keeps Shared; write: owner drops it
  requester @2 :UInt32;
  reqId @3 :UInt64;
}

struct Invalidate {
  # Home -> sharer: drop your copy; ack to `ackTo` (the home or the new owner).
  page @0 :UInt64;
  reqId @1 :UInt64;
  requester @2 :UInt32;
  ackTo @3 :UInt32;
}

struct InvalidateAck {
  page @0 :UInt64;
  reqId @1 :UInt64;
  from @2 :UInt32;
}

struct Downgrade {
  # Home -> owner: write-protect, send the data back, keep Shared (or drop when `drop`).
  page @0 :UInt64;
  reqId @1 :UInt64;
  drop @2 :Bool;
}

struct Writeback {
  # Owner -> home: the page's data (payload when `hasData`) after Downgrade, eviction or hand-over.
  page @0 :UInt64;
  reqId @1 :UInt64;
  hasData @2 :Bool;
  dirty @3 :Bool;
  newState @4 :PageState;      # what the sender keeps: shared or invalid
}

struct DirectoryAck {
  # Requester -> home: transaction `reqId` is complete; the home may serve the next request.
  page @0 :UInt64;
  reqId @1 :UInt64;
}

# ---- vCPUs and interrupts ---------------------------------------------------------------------

struct VcpuMigrate {
  vcpuId @0 :UInt32;
  state @1 :Data;              # serialized VcpuState (vcpu/ owns the format)
  fromNode @2 :UInt32;
  reason @3 :Text;
}

struct VcpuMigrateAck {
  vcpuId @0 :UInt32;
  accepted @1 :Bool;
  reason @2 :Text;
}

enum InterruptKind {
  fixed @0;
  nmi @1;
  init @2;
  startup @3;
  msi @4;
}

struct Interrupt {
  kind @0 :InterruptKind;
  vector @1 :UInt8;
  destApicId @2 :UInt32;
  sourceVcpu @3 :UInt32;
  msiAddress @4 :UInt64;       # for kind = msi (KVM_SIGNAL_MSI)
  msiData @5 :UInt32;
  level @6 :Bool;
}

# ---- devices ----------------------------------------------------------------------------------

enum DeviceOp {
  mmioRead @0;
  mmioWrite @1;
  pioRead @2;
  pioWrite @3;
  notify @4;                   # virtqueue kick forwarded to the device's node
}

struct DeviceRequest {
  deviceId @0 :UInt32;
  op @1 :DeviceOp;
  address @2 :UInt64;
  size @3 :UInt32;
  data @4 :Data;
  vcpuId @5 :UInt32;
}

struct DeviceReply {
  ok @0 :Bool;
  data @1 :Data;
  error @2 :Text;
}

# ---- diagnostics and RPC ----------------------------------------------------------------------

struct Ping {
  sentNs @0 :UInt64;
  counter @1 :UInt64;
}

struct Pong {
  sentNs @0 :UInt64;           # echoed from Ping
  counter @1 :UInt64;
}

struct RpcError {
  # A reply that reports a failure of the request (absl::StatusCode numbering).
  code @0 :UInt32;
  message @1 :Text;
}

struct Message {
  union {
    hello @0 :Hello;
    join @1 :Join;
    joinReply @2 :JoinReply;
    leave @3 :Leave;
    heartbeat @4 :Heartbeat;
    pageRequest @5 :PageRequest;
    pageGrant @6 :PageGrant;
    pageNack @7 :PageNack;
    pageForward @8 :PageForward;
    invalidate @9 :Invalidate;
    invalidateAck @10 :InvalidateAck;
    downgrade @11 :Downgrade;
    writeback @12 :Writeback;
    directoryAck @13 :DirectoryAck;
    vcpuMigrate @14 :VcpuMigrate;
    vcpuMigrateAck @15 :VcpuMigrateAck;
    interrupt @16 :Interrupt;
    deviceRequest @17 :DeviceRequest;
    deviceReply @18 :DeviceReply;
    ping @19 :Ping;
    pong @20 :Pong;
    rpcError @21 :RpcError;
  }
}
