#!/bin/bash
# The demo: installs what amalgam needs, builds it, and boots the test guest on 2 vCPUs.
#   tools/demo.sh                      # smp workload on 2 vCPUs
#   tools/demo.sh memtouch mib=128     # any guest workload (see guest/README.md)
# Extra amalgam flags go in AMALGAM_FLAGS, e.g. AMALGAM_FLAGS="--memory 512M".
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
bazel build -c opt //vmm:amalgam //guest:test_guest
bin=$(bazel info -c opt bazel-bin 2>/dev/null)
cmdline="${*:-smp cpus=2 iters=1000000}"
vcpus=1
if [[ $cmdline =~ cpus=([0-9]+) ]]; then vcpus=${BASH_REMATCH[1]}; fi
echo "+ amalgam --kernel guest/test_guest.elf --vcpus $vcpus --memory 256M --cmdline \"$cmdline\"" >&2
set +e
# shellcheck disable=SC2086
"$bin/vmm/amalgam" --kernel "$bin/guest/test_guest.elf" --vcpus "$vcpus" --memory 256M \
  --cmdline "$cmdline" ${AMALGAM_FLAGS:-}
rc=$?
set -e
# The test guest ends through the debug-exit port: status (value << 1) | 1, so 1 means success.
if ((rc == 1)); then
  echo "demo: guest finished successfully (debug-exit 0 -> exit status 1)" >&2
  exit 0
fi
echo "demo: amalgam exited with status $rc (see the lines above)" >&2
exit "$rc"
