#!/bin/bash
# Boot benchmark: amalgam vs QEMU microvm on the same test guest (//guest:test_guest).
# N alternating boots of each VMM (after W warm-up boots that are not counted). For every boot it
# measures the time from process start to the guest's `amalgam-guest: ready` line, the time to
# process exit, and the VMM's peak RSS (GNU time %M, i.e. getrusage maxrss of the process tree).
# Prints min/median/max per VMM and the amalgam/QEMU ratio of the medians. Never asserts.
# --linux: the Debian vmlinux (PVH) from tools/make-guest.sh ($AMALGAM_GUEST_DIR, else out/guest)
# to its `Linux version` banner; each VMM is stopped (SIGTERM) at the banner, so "exit" is the
# time to stop it, and "guest" stays 0 (the kernel never finishes on a PVM host anyway).
#
#   bazel run -c opt //bench:boot_bench -- -n 10      (builds and measures //vmm:amalgam too)
#   boot_bench.sh [-n RUNS] [-w WARMUP] [-t TIMEOUT_S] [-g GUEST.elf] [-c CMDLINE]
#                 [-m MEMORY_MIB] [-s VCPUS] [-o KEEP_DIR] [--amalgam-bin PATH] [--no-amalgam]
#                 [--amalgam-cmd TEMPLATE] [--qemu-cmd TEMPLATE] [--marker TEXT]
#                 [--stop-at-marker] [--linux]
# Command templates are run with `bash -c`; they see $GUEST $CMDLINE $MEM_MIB $VCPUS $AMALGAM_BIN.
set -uo pipefail

runs=10 warmup=1 timeout_s=60 mem_mib=256 vcpus=1 cmdline=hello keep_dir="" no_amalgam=0
stop_at_marker=0 linux=0 cmdline_set=0 mem_set=0
guest=${GUEST:-}
amalgam_bin=${AMALGAM_BIN:-}
# The amalgam command line (the VMM's flags may still change: adjust here or with --amalgam-cmd).
# Templates stay unexpanded here on purpose: bash -c expands them per boot.
# shellcheck disable=SC2016
amalgam_cmd='"$AMALGAM_BIN" --kernel "$GUEST" --cmdline "$CMDLINE" --memory ${MEM_MIB}M --vcpus $VCPUS'
# shellcheck disable=SC2016
qemu_cmd='qemu-system-x86_64 -M microvm -enable-kvm -cpu host,-arch-capabilities -m $MEM_MIB
  -smp $VCPUS -nodefaults -no-user-config -nographic -no-reboot -serial stdio
  -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel "$GUEST" -append "$CMDLINE"'
marker='amalgam-guest: ready'

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while (($#)); do
  case $1 in
    -n) runs=$2; shift ;;
    -w) warmup=$2; shift ;;
    -t) timeout_s=$2; shift ;;
    -g) guest=$2; shift ;;
    -c) cmdline=$2; cmdline_set=1; shift ;;
    -m) mem_mib=$2; mem_set=1; shift ;;
    -s) vcpus=$2; shift ;;
    -o) keep_dir=$2; shift ;;
    --amalgam-bin) amalgam_bin=$2; shift ;;
    --amalgam-cmd) amalgam_cmd=$2; shift ;;
    --qemu-cmd) qemu_cmd=$2; shift ;;
    --no-amalgam) no_amalgam=1 ;;
    --marker) marker=$2; shift ;;
    --stop-at-marker) stop_at_marker=1 ;;
    --linux) linux=1 ;;
    -h|--help) usage 0 ;;
    *) echo "boot_bench: unknown argument '$1' (see --help)" >&2; usage 2 >&2 ;;
  esac
  shift
done

# The guest: -g, else the runfile next to this script (bazel run), else the usual bazel-bin path.
here=$(cd "$(dirname "$0")" && pwd)
if ((linux)); then
  marker='Linux version' stop_at_marker=1
  ((cmdline_set)) || cmdline='earlyprintk=ttyS0 console=ttyS0 noxsave'
  ((mem_set)) || mem_mib=512
  if [[ -z $guest ]]; then
    for c in "${AMALGAM_GUEST_DIR:-}/vmlinux" "${BUILD_WORKSPACE_DIRECTORY:-.}/out/guest/vmlinux" \
      "$here/../out/guest/vmlinux"; do
      [[ -f $c ]] && { guest=$c; break; }
    done
  fi
  if [[ -z $guest || ! -f $guest ]]; then
    echo "boot_bench: no vmlinux: run tools/make-guest.sh OUTDIR and set AMALGAM_GUEST_DIR (or -g)" >&2
    exit 2
  fi
fi
if [[ -z $guest ]]; then
  for c in "${RUNFILES_DIR:-$0.runfiles}/amalgam/guest/test_guest.elf" "$PWD/guest/test_guest.elf" \
    "$here/../guest/test_guest.elf" "${BUILD_WORKSPACE_DIRECTORY:-.}/bazel-bin/guest/test_guest.elf"; do
    [[ -f $c ]] && { guest=$c; break; }
  done
fi
if [[ -z $guest || ! -f $guest ]]; then
  echo "boot_bench: no guest image: pass -g PATH (bazel build //guest:test_guest)" >&2
  exit 2
fi
guest=$(realpath "$guest")

# The amalgam binary: --amalgam-bin / $AMALGAM_BIN, else the runfile (bazel run), else PATH, else
# the workspace's bazel-bin.
if ((no_amalgam == 0)) && [[ -z $amalgam_bin ]]; then
  for c in "${RUNFILES_DIR:-$0.runfiles}/amalgam/vmm/amalgam" "$PWD/vmm/amalgam" \
    "$(command -v amalgam 2>/dev/null)" \
    "${BUILD_WORKSPACE_DIRECTORY:-.}/bazel-bin/vmm/amalgam"; do
    [[ -n $c && -x $c ]] && { amalgam_bin=$(realpath "$c"); break; }
  done
fi
labels=()
if ((no_amalgam == 0)) && [[ -n $amalgam_bin && -x $amalgam_bin ]]; then
  labels+=(amalgam)
else
  ((no_amalgam)) || echo "NOTE: amalgam binary not found (build //vmm:amalgam, then pass" \
    "--amalgam-bin PATH or set AMALGAM_BIN): measuring QEMU only, no ratio."
fi
if command -v qemu-system-x86_64 >/dev/null; then
  labels+=(qemu)
else
  echo "NOTE: qemu-system-x86_64 not installed: no QEMU baseline, no ratio."
fi
((${#labels[@]})) || { echo "boot_bench: nothing to run" >&2; exit 2; }

export GUEST=$guest CMDLINE=$cmdline MEM_MIB=$mem_mib VCPUS=$vcpus AMALGAM_BIN=$amalgam_bin
dir=${keep_dir:-$(mktemp -d /tmp/boot_bench.XXXXXX)}
mkdir -p "$dir"
[[ -n $keep_dir ]] || trap 'rm -rf "$dir"' EXIT
samples=$dir/samples.csv
echo "label,run,ready_ms,exit_ms,peak_rss_kb,status,guest_passed" >"$samples"

# One boot: appends a line to samples.csv. ready_ms is NA when the marker never appeared.
boot_once() {
  local label=$1 run=$2 template=$3 log=$dir/$1.$2.log rss=$dir/$1.$2.rss
  local t0 t_ready="" t_exit="" status="" line passed=0 tpid=""
  : >"$log"
  t0=$EPOCHREALTIME
  while IFS= read -r line; do
    if [[ $line == __boot_bench_pid=* ]]; then
      tpid=${line#__boot_bench_pid=}
      continue
    fi
    # The status may follow a last console line that had no newline (a VMM stopped mid-line).
    if [[ $line == *__boot_bench_status=* ]]; then
      t_exit=$EPOCHREALTIME
      status=${line##*__boot_bench_status=}
      line=${line%__boot_bench_status=*}
      [[ -n $line ]] && printf '%s\n' "$line" >>"$log"
      continue
    fi
    if [[ -z $t_ready && $line == *"$marker"* ]]; then
      t_ready=$EPOCHREALTIME
      # SIGTERM to `timeout` (the child of `time`), which passes it on to the VMM.
      ((stop_at_marker)) && [[ -n $tpid ]] && pkill -TERM -P "$tpid"
    fi
    [[ $line == *"amalgam-guest: exit 0"* ]] && passed=1
    printf '%s\n' "$line" >>"$log"
  done < <(
    /usr/bin/time -f '%M' -o "$rss" timeout -k 5 "$timeout_s" bash -c "exec $template" </dev/null 2>&1 &
    echo "__boot_bench_pid=$!"
    wait $!
    echo "__boot_bench_status=$?"
  )
  awk -v l="$label" -v r="$run" -v t0="$t0" -v tr="$t_ready" -v te="$t_exit" -v s="$status" \
    -v p="$passed" -v rss="$(tail -n1 "$rss" 2>/dev/null)" 'BEGIN {
      ready = tr == "" ? "NA" : sprintf("%.1f", (tr - t0) * 1000)
      printf "%s,%s,%s,%.1f,%s,%s,%s\n", l, r, ready, (te - t0) * 1000, rss == "" ? "NA" : rss, s, p
    }' >>"$samples"
}

# A template as one line (the default QEMU one is wrapped for reading).
template_of() {
  local t
  if [[ $1 == amalgam ]]; then t=$amalgam_cmd; else t=$qemu_cmd; fi
  echo "${t//$'\n'/ }"
}

echo "guest: $guest  cmdline: '$cmdline'  memory: ${mem_mib} MiB  vCPUs: $vcpus"
for l in "${labels[@]}"; do echo "$l: $(eval echo "$(template_of "$l")")"; done
echo "runs: $runs per VMM, alternating, after $warmup warm-up boot(s) each; timeout ${timeout_s}s"
echo "ready = first line with '$marker'$( ((stop_at_marker)) && echo "; the VMM is stopped (SIGTERM) there")"
for ((i = 0; i < warmup; i++)); do
  for l in "${labels[@]}"; do boot_once "$l" "warmup$i" "$(template_of "$l")"; done
done
sed -i '/,warmup/d' "$samples"
for ((i = 1; i <= runs; i++)); do
  for l in "${labels[@]}"; do boot_once "$l" "$i" "$(template_of "$l")"; done
done

# Table: min/median/max over the boots that reached the marker; ratio of medians.
awk -F, -v labels="${labels[*]}" '
  function sortn(a, n,   i, j, t) { for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t } }
  function med(a, n) { return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
  NR > 1 {
    total[$1]++
    if ($7 == 1) passed[$1]++
    if ($3 == "NA") next
    k = ++n[$1]; ready[$1, k] = $3; ex[$1, k] = $4; rss[$1, k] = $5 / 1024
  }
  END {
    split(labels, L, " ")
    printf "\n%-8s %5s %5s | %-26s | %-26s | %-24s\n", "vmm", "boots", "guest", "ready ms (min/med/max)", "exit ms (min/med/max)", "peak RSS MiB (min/med/max)"
    for (li = 1; li in L; li++) {
      l = L[li]; m = n[l] + 0
      if (m == 0) { printf "%-8s %5d %5d | no boot reached the ready line (see the logs; -o DIR keeps them)\n", l, total[l], passed[l]; continue }
      for (k = 1; k <= m; k++) { a[k] = ready[l, k]; b[k] = ex[l, k]; c[k] = rss[l, k] }
      sortn(a, m); sortn(b, m); sortn(c, m)
      mr[l] = med(a, m); me[l] = med(b, m); mm[l] = med(c, m)
      printf "%-8s %5d %5d | %7.1f %8.1f %8.1f | %7.1f %8.1f %8.1f | %6.1f %7.1f %7.1f\n", l, total[l], passed[l], a[1], mr[l], a[m], b[1], me[l], b[m], c[1], mm[l], c[m]
    }
    if (("amalgam" in mr) && ("qemu" in mr))
      printf "\namalgam/QEMU (medians): ready %.2fx, exit %.2fx, peak RSS %.2fx\n", mr["amalgam"] / mr["qemu"], me["amalgam"] / me["qemu"], mm["amalgam"] / mm["qemu"]
    else
      printf "\namalgam/QEMU ratio: n/a (only one VMM measured)\n"
    print "(boots = boots run; guest = boots whose guest printed `amalgam-guest: exit 0`)"
  }' "$samples"
[[ -n $keep_dir ]] && echo "samples and console logs: $dir"
exit 0
