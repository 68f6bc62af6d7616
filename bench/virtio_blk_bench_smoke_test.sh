#!/bin/bash
# Runs virtio_blk_bench once with a small disk and checks the report's shape (both VMMs ran,
# a ratio is printed); never a timing. Skips without /dev/kvm or QEMU.
#   virtio_blk_bench_smoke_test.sh BENCH GUEST.elf AMALGAM
set -uo pipefail
bench=$1 guest=$2 amalgam=$3
if [[ ! -w /dev/kvm ]] || ! command -v qemu-system-x86_64 >/dev/null; then
  echo "SKIP: needs /dev/kvm and qemu-system-x86_64"
  exit 0
fi
out=$("$bench" --mib 8 --runs 1 --guest "$guest" --amalgam "$amalgam" 2>&1)
echo "$out"
grep -qE '^amalgam +[0-9.]+s +[0-9.]+s +[0-9.]+$' <<<"$out" || { echo "FAIL: no amalgam row"; exit 1; }
grep -qE '^qemu +[0-9.]+s +[0-9.]+s +[0-9.]+$' <<<"$out" || { echo "FAIL: no qemu row"; exit 1; }
grep -qE '^ratio amalgam/qemu throughput: ([0-9.]+|n/a .*)$' <<<"$out" || { echo "FAIL: no ratio"; exit 1; }
echo PASS
