#include "directory/fault_injection.h"

#ifdef AMALGAM_DIRECTORY_FAULT_INJECTION
namespace amalgam::directory {
InjectedBug& InjectedBugForTest() {
  static InjectedBug bug = InjectedBug::kNone;
  return bug;
}
}  // namespace amalgam::directory
#endif
