#!/bin/bash
# Boots the test guest under QEMU microvm + KVM, the peer VMM, once per workload, and checks the
# serial protocol (guest/README.md) and QEMU's exit status (isa-debug-exit: 1 = guest value 0 =
# passed, 3 = guest value 1 = failed); a few boots also run under TCG (IOPL=3 honoured). Skips
# (exit 0, with a message) without QEMU or /dev/kvm.
#   qemu_boot_test.sh GUEST.elf BLK_PATTERN_CHECK
set -uo pipefail

guest=$1
pattern_check=$2
qemu=${QEMU:-qemu-system-x86_64}
if ! command -v "$qemu" >/dev/null; then
  echo "SKIP: $qemu is not installed (apt-get install qemu-system-x86)"
  exit 0
fi
if [[ ! -r /dev/kvm || ! -w /dev/kvm ]]; then
  echo "SKIP: /dev/kvm is missing or not accessible"
  exit 0
fi

tmp=${TEST_TMPDIR:-$(mktemp -d)}
failures=0
boots=0

accel=(-enable-kvm -cpu "host,-arch-capabilities")
machine=microvm
extra=()  # more QEMU arguments for the next boot (virtio devices)

# boot SMP DEBUG_EXIT CMDLINE WANT_STATUS REGEX...: every REGEX must match a whole output line.
boot() {
  local smp=$1 debug_exit=$2 cmdline=$3 want_status=$4
  shift 4
  local log="$tmp/boot$boots.log" status dev=()
  boots=$((boots + 1))
  [[ $debug_exit == 1 ]] && dev=(-device "isa-debug-exit,iobase=0xf4,iosize=0x04")
  timeout 120 "$qemu" -M "$machine" "${accel[@]}" -m 256 -smp "$smp" \
    -nodefaults -no-user-config -nographic -no-reboot -serial stdio "${dev[@]}" "${extra[@]}" \
    -kernel "$guest" -append "$cmdline" </dev/null >"$log" 2>&1
  status=$?
  local ok=1
  if [[ $status != "$want_status" ]]; then
    echo "FAIL [$cmdline]: exit status $status, want $want_status"
    ok=0
  fi
  if [[ $(head -n1 "$log") != "amalgam-guest: ready" ]]; then
    echo "FAIL [$cmdline]: first line is not 'amalgam-guest: ready'"
    ok=0
  fi
  local re
  for re in "$@"; do
    if ! grep -qE "^($re)\$" "$log"; then
      echo "FAIL [$cmdline]: no line matching ^($re)\$"
      ok=0
    fi
  done
  if ((ok)); then
    echo "ok   [$cmdline] (${accel[*]} -smp $smp) status $status"
  else
    failures=$((failures + 1))
    echo "---- output of [$cmdline]:"
    cat "$log"
    echo "----"
  fi
}

pass='amalgam-guest: exit 0'
fail='amalgam-guest: exit 1'

boot 2 1 "hello" 1 "hello: Hello from the amalgam test guest" "$pass"
boot 1 1 "" 1 "hello: Hello from the amalgam test guest" "$pass"
boot 2 1 "memtouch mib=64" 1 "memtouch: ok mib=64 pages=16384" "$pass"
boot 1 1 "memtouch" 1 "memtouch: ok mib=16 pages=4096" "$pass"
boot 2 1 "smp cpus=2" 1 "smp: ok cpus=2 counter=200000" "$pass"
boot 2 1 "smp cpus=2 iters=12345" 1 "smp: ok cpus=2 counter=24690" "$pass"
boot 1 1 "smp" 1 "smp: ok cpus=1 counter=100000" "$pass"
boot 2 1 "compute" 1 "compute: ok mib=16 checksum=0xdd78d5100543c95e" "$pass"
boot 2 1 "compute mib=1 cpus=2" 1 "compute: ok mib=1 checksum=0x4f283bac9c0b89e2" "$pass"
# Failures must be reported cleanly, never hang.
boot 2 1 "bogus" 3 "amalgam-guest: unknown workload bogus" "$fail"
boot 1 1 "memtouch mib=100000" 3 \
  "memtouch: FAIL mib=100000 exceeds the free RAM above the image \([0-9]+ MiB\)" "$fail"
boot 1 1 "compute mib=0" 3 "compute: FAIL mib must be at least 1" "$fail"
boot 1 1 "memtouch mib=12x" 3 "amalgam-guest: bad value for mib \(want a decimal number\)" "$fail"
boot 2 1 "smp cpus=3 iters=10" 3 "smp: FAIL only 2 of 3 cpus arrived .*" "$fail"
boot 2 1 "smp cpus=999" 3 "smp: FAIL cpus= must be a number from 1 to 64" "$fail"
boot 1 1 "fault" 3 \
  "amalgam-guest: FAULT vector=6 err=0x0 rip=0x[0-9a-f]+ cr2=0x[0-9a-f]+ cpu=0 ring=3 rflags=0x[0-9a-f]+" \
  "$fail"
# Without a debug-exit device the guest stops itself with a triple fault (QEMU -no-reboot: 0).
boot 1 0 "hello" 0 "hello: Hello from the amalgam test guest" "$pass"

# virtio-mmio: with acpi=off microvm appends virtio_mmio.device=512@0xfeb.....:N for each device
# to the command line, as the guest driver expects; force-legacy=false gives version 2.
machine=microvm,acpi=off
vm=(-global virtio-mmio.force-legacy=false)
disk=$tmp/disk.img
rm -f "$disk" && truncate -s 8M "$disk"
extra=("${vm[@]}" -drive "id=d0,file=$disk,format=raw,if=none" \
  -device "virtio-blk-device,drive=d0,serial=qemu-disk-0")
boot 1 1 "blk mib=4" 1 "blk: ok mib=4 id=qemu-disk-0" "$pass"
if ! "$pattern_check" "$disk" 4; then
  echo "FAIL [blk mib=4]: the pattern is not on the disk file"
  failures=$((failures + 1))
fi
boot 1 1 "blkbad" 1 "blkbad: ok needs_reset=2 recovered=1" "$pass"
extra=("${vm[@]}" -drive "id=d0,file=$disk,format=raw,if=none,readonly=on" \
  -device "virtio-blk-device,drive=d0")
boot 1 1 "blkro" 1 "blkro: ok write=ioerr" "$pass"
extra=("${vm[@]}" -device virtio-rng-device)
boot 1 1 "rng" 1 "rng: ok bytes=128" "$pass"
extra=("${vm[@]}" -chardev "file,id=c0,path=$tmp/vcon.txt" -device virtio-serial-device \
  -device "virtconsole,chardev=c0")
boot 1 1 "console" 1 "console: ok bytes=50" "$pass"
if ! grep -qx "virtio-console: hello from the amalgam test guest" "$tmp/vcon.txt"; then
  echo "FAIL [console]: the line did not arrive through virtio-console"
  failures=$((failures + 1))
fi
extra=("${vm[@]}")
boot 1 1 "blk" 3 "blk: FAIL no virtio_mmio.device= on the command line" "$fail"
extra=("${vm[@]}" -device virtio-rng-device)
boot 1 1 "blk" 3 "blk: FAIL no virtio-mmio device of this type" "$fail"
machine=microvm
extra=()

# QEMU's TCG honours RFLAGS.IOPL=3 like hardware virtualization would, so ring-3 port I/O runs
# without the #GP emulation that PVM needs: both paths of the guest get booted.
accel=(-accel tcg -cpu max)
boot 2 1 "smp cpus=2 iters=1000" 1 "smp: ok cpus=2 counter=2000" "$pass"
boot 1 1 "fault" 3 "amalgam-guest: FAULT vector=6 .* ring=3 rflags=0x3[0-9a-f]{3}" "$fail"
boot 1 0 "hello" 0 "hello: Hello from the amalgam test guest" "$pass"

echo "$boots boots, $failures failed"
((failures == 0))
