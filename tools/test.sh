#!/bin/bash
# The whole test suite: installs what it needs, then runs every test plainly and again under
# AddressSanitizer + UndefinedBehaviorSanitizer. Ends with the line "N passed, N failed".
#   tools/test.sh                 # everything
#   tools/test.sh //fabric/...    # a subset (same two passes)
#   AMALGAM_NO_ASAN=1 tools/test.sh   # plain pass only
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
tools/setup.sh || { echo "0 passed, 1 failed"; exit 1; }

# The Linux guest image (Debian's kernel + a busybox initramfs) for the boot tests. It comes from
# Debian's package mirror; without it those tests report SKIPPED instead of failing.
guest_dir="$PWD/out/guest"
if [[ ! -f "$guest_dir/vmlinux" || ! -f "$guest_dir/vmlinuz" ]]; then
  tools/make-guest.sh "$guest_dir" || echo "test.sh: could not build the Linux guest image; Linux boot tests will skip" >&2
fi

targets=("$@")
((${#targets[@]})) || targets=(//...)
log_dir=$(mktemp -d /tmp/amalgam-test.XXXXXX)
passed=0 failed=0 rc=0

run_pass() {  # name, bazel args...
  local name=$1; shift
  local log="$log_dir/$name.log"
  echo "== test pass: $name (bazel test $* ${targets[*]})"
  bazel test --keep_going --test_env=AMALGAM_GUEST_DIR="$guest_dir" "$@" -- "${targets[@]}" 2>&1 | tee "$log"
  local r=${PIPESTATUS[0]}
  # Per-target result lines: "//pkg:target   PASSED in 1.2s" (bazel's own summary is not read).
  local p f
  p=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log")
  f=$(grep -cE '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|NO STATUS|FLAKY|INCOMPLETE|FAILED TO BUILD)' "$log")
  if ((r != 0 && f == 0)); then f=1; fi  # build error before any test ran
  passed=$((passed + p)) failed=$((failed + f))
  ((r == 0)) || rc=1
}

run_pass plain
if [[ -z "${AMALGAM_NO_ASAN:-}" ]]; then
  run_pass asan --config=asan
fi
echo "logs: $log_dir"
echo "${passed} passed, ${failed} failed"
exit $rc
