#!/bin/bash
# Runs the benchmark briefly and checks the report's shape only (never a timing).
set -euo pipefail
out=$("$1" --pages=40 --rounds=1)
echo "$out"
grep -q '^ratio remote read miss / floor: median' <<<"$out"
grep -q 'request sent -> grant received (fabric round trip) *n=40 ' <<<"$out"
grep -q '^checks: bad reads 0, NodeRuntime errors 0$' <<<"$out"
out=$("$2" --rounds=2)
echo "$out"
grep -q '^ratio remote read miss / floor: median' <<<"$out"
grep -q 'read miss, home on node 1 (4 KiB grant) *n=64 ' <<<"$out"
grep -q '^checks: bad reads 0, NodeRuntime errors 0$' <<<"$out"
