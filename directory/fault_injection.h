// Deliberately broken transitions, compiled in only when AMALGAM_DIRECTORY_FAULT_INJECTION is
// defined (the test-only target :directory_with_injected_bugs). They exist to prove that the
// exhaustive checker catches real protocol bugs. The production target never defines it.
#ifndef AMALGAM_DIRECTORY_FAULT_INJECTION_H_
#define AMALGAM_DIRECTORY_FAULT_INJECTION_H_

#ifdef AMALGAM_DIRECTORY_FAULT_INJECTION

namespace amalgam::directory {

enum class InjectedBug {
  kNone,
  // Owner answering Downgrade/hand-over (or evicting) copies the page out BEFORE write-protecting
  // it: a guest store between the copy and the protect is lost.
  kCopyOutBeforeProtect,
  // Home granting a write to a Shared page forgets to invalidate the highest-numbered other
  // sharer: a stale read-only copy survives next to the new writer.
  kSkipOneInvalidate,
};

// Process-wide switch for tests; not thread-safe (tests set it before running the checker).
InjectedBug& InjectedBugForTest();

}  // namespace amalgam::directory

#endif  // AMALGAM_DIRECTORY_FAULT_INJECTION
#endif  // AMALGAM_DIRECTORY_FAULT_INJECTION_H_
