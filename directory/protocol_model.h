// Test-only model of a whole cluster running the directory protocol, and the checkers over it.
//
// The model wires N NodeCaches and HomeDirectories together like the node runtime would: per
// (src, dst) FIFO channels (the fabric's per-peer order), arbitrary interleaving across channels,
// one vCPU per node performing reads and writes, a fault/message handler per node that performs
// its action list one action at a time (so a vCPU may access the page between two actions,
// which makes "drop before write-protect" observable as a lost write), and a ghost copy of the
// last completed write of every page.
//
// Thread-safety: not thread-safe. Ownership: results are plain values.
#ifndef AMALGAM_DIRECTORY_PROTOCOL_MODEL_H_
#define AMALGAM_DIRECTORY_PROTOCOL_MODEL_H_

#include <cstdint>
#include <string>
#include <vector>

namespace amalgam::directory {

struct ModelConfig {
  uint32_t nodes = 3;
  uint32_t pages = 2;                 // homed round-robin: page p at node p % nodes
  uint32_t ops_per_node = 2;          // each op: a read or a write of any page (all choices)
  uint32_t evictions_per_node = 0;    // voluntary evictions a node may do at any time
  uint64_t max_states = 200'000'000;  // exhaustive search gives up (truncated) beyond this
  // Partial-order reduction: a handler action that is invisible to every checked property and
  // independent of every other enabled step (Send, StoreHomeCopy, WakeVcpus, and CopyOut while
  // the node's vCPU cannot write) runs at once instead of in every interleaving. Sound here
  // because such a step touches only its node's private state, the tail of one FIFO channel or
  // a blocked vCPU, and the state graph is acyclic (checked). Turn off to cross-check.
  bool reduce_invisible_steps = true;
};

struct CheckResult {
  bool ok = true;
  bool truncated = false;          // hit max_states: not a proof
  std::string violation;           // first violation found
  std::vector<std::string> trace;  // the steps from the initial state to the violation
  uint64_t states = 0;             // distinct states explored
  uint64_t transitions = 0;
  uint64_t terminal_states = 0;
  uint64_t reads_checked = 0;  // completed reads compared with the ghost last write
  uint32_t max_depth = 0;
};

// Explores every interleaving (depth-first over hashed states). In every reachable state:
// at most one writable mapping or any number of read-only ones per page; every completed read
// returns the last completed write; no library call fails; no action is applied to a page in
// the wrong mapping state. Terminal states must have every operation completed, every channel
// empty and every home idle (no deadlock), and the graph must have no cycle (no livelock),
// so every request completes on every path.
CheckResult ExploreAll(const ModelConfig& config);

// Random walks to the end (many nodes and pages), same checks.
CheckResult RandomWalks(const ModelConfig& config, uint64_t seed, uint32_t walks);

// Human-readable summary (counts, and the violation with its numbered trace).
std::string Summarize(const CheckResult& r);

}  // namespace amalgam::directory

#endif  // AMALGAM_DIRECTORY_PROTOCOL_MODEL_H_
