// RunProcess: runs a program with arguments and extra environment, captures stdout and stderr,
// and kills it after a generous deadline (a hang must fail the test, not block CI forever).
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

}  // namespace amalgam::vmm

#endif  // AMALGAM_VMM_RUN_PROCESS_TESTUTIL_H_
