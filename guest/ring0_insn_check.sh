#!/bin/bash
# Checks the test guest's instructions against what PVM can run (see DESIGN.md "This machine kind"):
#  - the .ring0 section (everything that may run in ring 0) has none of the instructions PVM's
#    emulator rejects (int3, popcnt, cmpxchg16b, xgetbv, rdtscp, xsave/xrstor, ...);
#  - no SSE/AVX/MMX register and no syscall/sysret/sysenter anywhere in the image.
#   ring0_insn_check.sh GUEST.elf [FIXTURE.elf]   (FIXTURE must be rejected)
set -uo pipefail

ring0_forbidden='(int3|popcntq?l?w?|cmpxchg16b|xgetbv|xsetbv|rdtscp|xrstors?6?4?|xsaves?c?o?p?t?6?4?|fxrstor6?4?|tzcnt[wlq]?|lzcnt[wlq]?|endbr(64|32)|ldmxcsr|stmxcsr|movnti[lq]?|emms|f(ld|st|stp|add|mul|sub|div|init|ninit|wait|ldcw|nstcw|xch)[a-z]*)'
anywhere_forbidden='(%[xyz]mm[0-9]+|%mm[0-7]|\b(syscall|sysretq?l?|sysenter|sysexitq?l?)\b)'

# Prints the violations of one ELF; returns 0 if it is clean.
check() {
  local elf=$1 ring0 all bad rc=0
  ring0=$(objdump -d --no-show-raw-insn -j .ring0 "$elf" 2>&1) || {
    echo "$elf: no .ring0 section to check: $ring0"
    return 1
  }
  bad=$(grep -P "^\s+[0-9a-f]+:\s+(lock |rep[a-z]* )*$ring0_forbidden(\s|$)" <<<"$ring0")
  if [[ -n $bad ]]; then
    echo "$elf: instructions in .ring0 that PVM cannot run in ring 0:"
    echo "$bad"
    rc=1
  fi
  all=$(objdump -d --no-show-raw-insn "$elf" 2>&1)
  bad=$(grep -P "^\s+[0-9a-f]+:\s+.*$anywhere_forbidden" <<<"$all")
  if [[ -n $bad ]]; then
    echo "$elf: SSE/AVX/MMX registers or syscall-family instructions:"
    echo "$bad"
    rc=1
  fi
  return $rc
}

guest=$1
fixture=${2:-}
status=0

if ! check "$guest"; then
  echo "FAIL: $guest breaks the ring-0 instruction rules"
  status=1
fi
# The checked section must really hold the ring-0 code: the entry, the trap handler, the serial
# helpers. If the layout ever moved them out, the check above would pass vacuously.
syms=$(objdump -d -j .ring0 "$guest" | grep -oP '^[0-9a-f]+ <\K[a-z0-9_]+(?=>:)')
for want in pvh_start32 long_mode64 isr_common ring0_cpu_init ring0_trap serial_write guest_exit \
  ap_trampoline_start; do
  if ! grep -qx "$want" <<<"$syms"; then
    echo "FAIL: $want is not in .ring0 of $guest"
    status=1
  fi
done
# PVH entry note: type 0x12 (XEN_ELFNOTE_PHYS32_ENTRY), owner Xen.
if ! readelf -n "$guest" | grep -qP '^\s+Xen\s+0x00000004\s+.*0x00000012|^\s+Xen\s+0x00000004\s+Unknown note type: \(0x00000012\)'; then
  echo "FAIL: no Xen PVH entry note (type 0x12, descsz 4) in $guest:"
  readelf -n "$guest"
  status=1
fi

if [[ -n $fixture ]]; then
  if out=$(check "$fixture"); then
    echo "FAIL: the checker accepted $fixture, which has popcnt/int3/xgetbv in .ring0 and xmm use"
    status=1
  else
    for want in popcnt int3 xgetbv xmm0; do
      grep -q "$want" <<<"$out" || { echo "FAIL: the checker missed $want in $fixture"; status=1; }
    done
  fi
fi

((status == 0)) && echo "PASS: $guest: ring-0 section clean, no SSE/AVX, PVH note present"
exit $status
