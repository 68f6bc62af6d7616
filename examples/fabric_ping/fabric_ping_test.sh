#!/bin/bash
# Runs the example as a user would: a key, an answering node, a pinging node (two processes).
set -euo pipefail
bin=$1
dir=$(mktemp -d "${TEST_TMPDIR:-/tmp}/fabric_ping.XXXXXX")
"$bin" --gen-key "$dir/key"
if "$bin" --gen-key "$dir/key" 2>/dev/null; then echo "overwrote an existing key" >&2; exit 1; fi
# Node 1 answers on an ephemeral port and prints it.
"$bin" --node 1 --listen 127.0.0.1:0 --peer 0=127.0.0.1:1 --key-file "$dir/key" >"$dir/n1.log" 2>&1 &
n1=$!
trap 'kill $n1 2>/dev/null || true' EXIT
for _ in $(seq 200); do grep -q listening "$dir/n1.log" && break; sleep 0.1; done
port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$dir/n1.log")
[[ -n $port ]] || { cat "$dir/n1.log"; exit 1; }
"$bin" --node 0 --listen 127.0.0.1:0 --peer "1=127.0.0.1:$port" --key-file "$dir/key" \
  --count 5 --page --interval 0 --linger 0 | tee "$dir/n0.log"
[[ $(grep -c 'page ok' "$dir/n0.log") -eq 5 ]]
grep -q '5/5 replies' "$dir/n0.log"
# A node with another key is refused.
"$bin" --gen-key "$dir/other"
if timeout 60 "$bin" --node 0 --listen 127.0.0.1:0 --peer "1=127.0.0.1:$port" \
    --key-file "$dir/other" --count 1 --wait 3 --linger 0 >"$dir/bad.log" 2>&1; then
  echo "a node with the wrong key got in" >&2; exit 1
fi
grep -q 'same key' "$dir/bad.log"
echo PASS
