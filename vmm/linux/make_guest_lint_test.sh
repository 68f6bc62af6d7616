#!/bin/bash
# tools/make-guest.sh must stay shellcheck-clean (it is not a Bazel input: found through this
# package's BUILD file, a runfile symlink into the source tree). Skips without shellcheck.
set -euo pipefail
build=$(realpath vmm/linux/BUILD)
script=${build%vmm/linux/BUILD}tools/make-guest.sh
[[ -f $script ]] || { echo "FAIL: $script not found"; exit 1; }
bash -n "$script"
if ! command -v shellcheck >/dev/null; then
  echo "SKIPPED: shellcheck not installed (apt-get install shellcheck)"
  exit 0
fi
shellcheck "$script"
echo "PASS: $script is shellcheck-clean"
