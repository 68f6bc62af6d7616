#!/bin/bash
# Smoke test of the boot benchmark harness (not of boot speed: no timing is asserted). Runs it
# QEMU-only, then with a stand-in "amalgam" (QEMU again) to exercise the two-VMM table and ratio.
#   boot_bench_smoke_test.sh boot_bench.sh GUEST.elf
set -uo pipefail
bench=$1 guest=$2
if ! command -v qemu-system-x86_64 >/dev/null || [[ ! -w /dev/kvm ]]; then
  echo "SKIP: needs qemu-system-x86_64 and /dev/kvm"
  exit 0
fi
tmp=${TEST_TMPDIR:-$(mktemp -d)}
status=0
expect() {  # expect WHAT REGEX FILE
  if ! grep -qE "$2" "$3"; then
    echo "FAIL: $1 (no line matching /$2/)"
    cat "$3"
    status=1
  fi
}

"$bench" -n 2 -w 0 -g "$guest" --no-amalgam -o "$tmp/q" >"$tmp/q.out" 2>&1
expect "QEMU row with 2 boots, 2 guest passes" '^qemu +2 +2 \| +[0-9.]+ +[0-9.]+ +[0-9.]+ \|' "$tmp/q.out"
expect "no ratio with one VMM" '^amalgam/QEMU ratio: n/a' "$tmp/q.out"
expect "samples recorded" '^qemu,2,[0-9.]+,[0-9.]+,[0-9]+,1,1$' "$tmp/q/samples.csv"
expect "console log kept" '^amalgam-guest: ready$' "$tmp/q/qemu.1.log"

# shellcheck disable=SC2016
stand_in='qemu-system-x86_64 -M microvm -enable-kvm -cpu host,-arch-capabilities -m $MEM_MIB
  -smp $VCPUS -nodefaults -no-user-config -nographic -no-reboot -serial stdio
  -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel "$GUEST" -append "$CMDLINE"'
"$bench" -n 1 -w 0 -g "$guest" -c "memtouch mib=8" --amalgam-bin /bin/true \
  --amalgam-cmd "$stand_in" >"$tmp/a.out" 2>&1
expect "amalgam row" '^amalgam +1 +1 \|' "$tmp/a.out"
expect "QEMU row" '^qemu +1 +1 \|' "$tmp/a.out"
expect "ratio of medians" '^amalgam/QEMU \(medians\): ready [0-9.]+x, exit [0-9.]+x, peak RSS [0-9.]+x$' \
  "$tmp/a.out"

# --stop-at-marker: the VMM is stopped at the (custom) marker and the row is still reported.
"$bench" -n 1 -w 0 -g "$guest" --no-amalgam --marker 'amalgam-guest: ready' --stop-at-marker \
  -o "$tmp/m" >"$tmp/m.out" 2>&1
expect "stop-at-marker row" '^qemu +1 +[01] \| +[0-9.]+ ' "$tmp/m.out"
expect "stop-at-marker note" "ready = first line with 'amalgam-guest: ready'; the VMM is stopped" \
  "$tmp/m.out"

# A VMM that never prints the marker is reported, not hidden.
"$bench" -n 1 -w 0 -g "$guest" --amalgam-bin /bin/true --amalgam-cmd 'echo no guest here' \
  >"$tmp/b.out" 2>&1
expect "failed boots reported" '^amalgam +1 +0 \| no boot reached the ready line' "$tmp/b.out"

((status == 0)) && echo "PASS: boot_bench harness"
exit $status
