#!/bin/bash
# Runs the benchmark briefly and checks the report's shape only (never a timing).
set -euo pipefail
out=$("$1" --rtt_n=200 --seconds=0.2 --runs=1)
echo "$out"
grep -q '^raw_tcp (no amalgam) .*bad=0' <<<"$out"
grep -q '^amalgam_tcp (fabric) .*bad=0' <<<"$out"
grep -q '^amalgam_tcp_rpc (RpcChannel) .*bad=0' <<<"$out"
grep -q '^ratio amalgam/raw: rtt p50' <<<"$out"
