#!/bin/bash
# Runs a libFuzzer binary for a bounded number of inputs / seconds (see bzl/fuzz.bzl).
# usage: run_fuzzer.sh FUZZER RUNS SECONDS [CORPUS_FILE...]
set -euo pipefail
fuzzer=$1 runs=$2 secs=$3
shift 3
work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/corpus.XXXXXX")
for f in "$@"; do cp "$f" "$work/"; done
exec "$fuzzer" -runs="$runs" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 "$work"
