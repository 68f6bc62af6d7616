// RunProcess: runs a program with arguments and extra environment, captures stdout and stderr,
// and kills it after a generous deadline (a hang must fail the test, not block CI forever).
// Plus the small file helpers every test of the `amalgam` binary needs.
// Thread-safety: call from one thread at a time (it forks).
#ifndef AMALGAM_VMM_RUN_PROCESS_TESTUTIL_H_
#define AMALGAM_VMM_RUN_PROCESS_TESTUTIL_H_

#include <string>
#include <utility>
#include <vector>

namespace amalgam::vmm {

struct ProcessResult {
  int exit_code = -1;  // valid when !signaled
  bool signaled = false;
  int signal = 0;
  bool timed_out = false;
  std::string out;
  std::string err;
};

// When `stop_marker` is non-empty, the child gets SIGTERM as soon as its stdout contains it.
ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const std::vector<std::pair<std::string, std::string>>& env = {},
                         int deadline_seconds = 300, const std::string& stop_marker = "");

// The path of a runfile given as a workspace-relative path ("vmm/amalgam").
std::string Runfile(const std::string& path);
// The `amalgam` binary and the test guest (//guest:test_guest), as runfiles.
std::string AmalgamBinary();
std::string TestGuestElf();

// $TEST_TMPDIR/name (else /tmp/name).
std::string TestTempPath(const std::string& name);
// The whole file ("" when it cannot be read).
std::string ReadTextFile(const std::string& path);
// True when a line of `text` starts with `prefix`.
bool HasLineStartingWith(const std::string& text, const std::string& prefix);

}  // namespace amalgam::vmm

#endif  // AMALGAM_VMM_RUN_PROCESS_TESTUTIL_H_
