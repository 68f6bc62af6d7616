#!/bin/bash
# Cluster slowdown: the test guest's `memtouch` and `compute` workloads on 1 node (plain amalgam)
# vs 2 and 3 amalgam cluster nodes on this machine (processes on loopback, TCP fabric, guest RAM
# split evenly over the nodes, node 0 runs the vCPU), and QEMU microvm on the same guest file.
# Config "1c" is a cluster of one (node 0 alone: userfaultfd and the node runtime, no fabric);
# "2m"/"3m" (--memif) are 2/3 nodes over DPDK memif (--fabric dpdk-memif) instead of TCP.
# Wall time = node 0 (or QEMU) process start to exit; memory nodes are started first and are not
# timed. The workload covers nearly all guest RAM (--mib 240 of -m 256), so with N nodes about
# (N-1)/N of its pages are homed remotely. Configurations alternate within each run; prints
# median (min) per cell and the ratio of medians against 1 node. A run whose guest did not print
# `<workload>: ok` counts as failed. Never asserts.
#
#   bazel run -c opt //bench/node:cluster_bench -- -n 3
#   cluster_bench.sh [-n RUNS] [-m MEMORY_MIB] [--mib WORKLOAD_MIB] [--nodes "1 1c 2 3"]
#                    [--workloads "memtouch compute"] [--fabric tcp] [-t TIMEOUT_S] [-g GUEST.elf]
#                    [--amalgam-bin PATH] [--no-qemu] [--memif] [-o KEEP_DIR]
set -uo pipefail

runs=3 mem_mib=256 work_mib=240 nodes="1 1c 2 3" workloads="memtouch compute" fabric=tcp
timeout_s=300 guest=${GUEST:-} amalgam_bin=${AMALGAM_BIN:-} no_qemu=0 keep_dir=""

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while (($#)); do
  case $1 in
    -n) runs=$2; shift ;;
    -m) mem_mib=$2; shift ;;
    --mib) work_mib=$2; shift ;;
    --nodes) nodes=$2; shift ;;
    --workloads) workloads=$2; shift ;;
    --fabric) fabric=$2; shift ;;
    -t) timeout_s=$2; shift ;;
    -g) guest=$2; shift ;;
    --amalgam-bin) amalgam_bin=$2; shift ;;
    --no-qemu) no_qemu=1 ;;
    --memif) nodes+=" 2m 3m" ;;
    -o) keep_dir=$2; shift ;;
    -h|--help) usage 0 ;;
    *) echo "cluster_bench: unknown argument '$1' (see --help)" >&2; usage 2 >&2 ;;
  esac
  shift
done

here=$(cd "$(dirname "$0")" && pwd)
if [[ -z $guest ]]; then
  for c in "${RUNFILES_DIR:-$0.runfiles}/amalgam/guest/test_guest.elf" "$PWD/guest/test_guest.elf" \
    "$here/../../guest/test_guest.elf" "${BUILD_WORKSPACE_DIRECTORY:-.}/bazel-bin/guest/test_guest.elf"; do
    [[ -f $c ]] && { guest=$c; break; }
  done
fi
[[ -n $guest && -f $guest ]] || { echo "cluster_bench: no guest image (-g PATH)" >&2; exit 2; }
if [[ -z $amalgam_bin ]]; then
  for c in "${RUNFILES_DIR:-$0.runfiles}/amalgam/vmm/amalgam" "$PWD/vmm/amalgam" \
    "$(command -v amalgam 2>/dev/null)" "${BUILD_WORKSPACE_DIRECTORY:-.}/bazel-bin/vmm/amalgam"; do
    [[ -n $c && -x $c ]] && { amalgam_bin=$(realpath "$c"); break; }
  done
fi
[[ -n $amalgam_bin && -x $amalgam_bin ]] || { echo "cluster_bench: no amalgam binary (--amalgam-bin PATH)" >&2; exit 2; }
guest=$(realpath "$guest")
if ! "$amalgam_bin" --help 2>&1 | grep -q -- '--node-id'; then
  echo "cluster_bench: $amalgam_bin has no cluster flags (--node-id): only the 1-node column" >&2
  nodes=1
fi
configs=()
for n in $nodes; do configs+=("$n"); done
((no_qemu)) || { command -v qemu-system-x86_64 >/dev/null && configs+=(qemu); }

dir=${keep_dir:-$(mktemp -d /tmp/cluster_bench.XXXXXX)}
mkdir -p "$dir"
[[ -n $keep_dir ]] || trap 'rm -rf "$dir"' EXIT
od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$dir/cluster.key"
samples=$dir/samples.csv
echo "workload,config,run,secs,ok" >"$samples"

# Ports: a fresh block per cluster run (a killed run's ports may linger in TIME_WAIT).
next_port=$((20000 + RANDOM % 30000))

# One run of `workload` on config (node count or qemu); appends a sample line.
run_once() {
  local workload=$1 cfg=$2 run=$3 log=$dir/$1.$2.$3.log cmdline="$1 mib=$work_mib"
  local pids=() peers="" i t0 t1 ok=0 status
  if [[ $cfg == qemu ]]; then
    t0=$EPOCHREALTIME
    timeout -k 5 "$timeout_s" qemu-system-x86_64 -M microvm -enable-kvm -cpu host,-arch-capabilities \
      -m "$mem_mib" -smp 1 -nodefaults -no-user-config -nographic -no-reboot -serial stdio \
      -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel "$guest" -append "$cmdline" \
      </dev/null >"$log" 2>&1
    status=$?
    t1=$EPOCHREALTIME
  elif [[ $cfg == 1 ]]; then
    t0=$EPOCHREALTIME
    timeout -k 5 "$timeout_s" "$amalgam_bin" --kernel "$guest" --cmdline "$cmdline" \
      --memory "${mem_mib}M" --vcpus 1 </dev/null >"$log" 2>&1
    status=$?
    t1=$EPOCHREALTIME
  else
    local n=${cfg%[cm]} fab=$fabric
    # memif sockets are abstract: `dir` only has to differ between clusters.
    [[ $cfg == *m ]] && fab="dpdk-memif:dir=/amalgam-cluster-bench-$$-$next_port"
    for ((i = 0; i < n; i++)); do peers+="${peers:+,}$i=127.0.0.1:$((next_port + i))"; done
    next_port=$((next_port + n))
    ((next_port > 60000)) && next_port=20000
    local common=(--peers "$peers" --cluster-key "$dir/cluster.key" --memory "${mem_mib}M"
      --fabric "$fab")
    for ((i = 1; i < n; i++)); do
      timeout -k 5 "$timeout_s" "$amalgam_bin" --node-id "$i" "${common[@]}" \
        --metrics-out "$log.node$i.metrics" </dev/null >"$log.node$i" 2>&1 &
      pids+=($!)
    done
    t0=$EPOCHREALTIME
    timeout -k 5 "$timeout_s" "$amalgam_bin" --node-id 0 "${common[@]}" --kernel "$guest" \
      --cmdline "$cmdline" --vcpus 1 --metrics-out "$log.node0.metrics" </dev/null >"$log" 2>&1
    status=$?
    t1=$EPOCHREALTIME
    # Memory nodes leave when node 0 does; a node 0 that failed early may leave them waiting.
    if ((${#pids[@]})); then
      for ((i = 0; i < 100; i++)); do
        kill -0 "${pids[@]}" 2>/dev/null || break
        sleep 0.1
      done
      kill "${pids[@]}" 2>/dev/null
      for p in "${pids[@]}"; do wait "$p"; done
    fi
  fi
  grep -q "^$workload: ok" "$log" && ok=1
  awk -v w="$workload" -v c="$cfg" -v r="$run" -v t0="$t0" -v t1="$t1" -v ok="$ok" \
    'BEGIN { printf "%s,%s,%s,%.3f,%d\n", w, c, r, t1 - t0, ok }' >>"$samples"
  ((ok)) || echo "cluster_bench: $workload on $cfg (run $run) failed, status $status; log: $log" \
    "$( [[ -n $keep_dir ]] || echo '(-o DIR keeps it)')" >&2
}

echo "guest: $guest  memory: ${mem_mib} MiB  workloads: $workloads (mib=$work_mib)  1 vCPU"
echo "amalgam: $amalgam_bin  fabric: $fabric  configs: ${configs[*]}  runs: $runs (alternating)"
for ((r = 1; r <= runs; r++)); do
  for w in $workloads; do
    for c in "${configs[@]}"; do run_once "$w" "$c" "$r"; done
  done
done

awk -F, -v configs="${configs[*]}" -v workloads="$workloads" '
  function sortn(a, n,   i, j, t) { for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t } }
  function med(a, n) { return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
  function label(c) { return c == "qemu" ? "QEMU microvm" : c == "1" ? "1 node (plain)" : c == "1c" ? "1 node (cluster of 1)" : c ~ /m$/ ? substr(c, 1, length(c) - 1) " nodes (memif)" : c " nodes" }
  NR > 1 { total[$1, $2]++; if ($5 != 1) next; k = ++n[$1, $2]; s[$1, $2, k] = $4 }
  END {
    nc = split(configs, C, " "); nw = split(workloads, W, " ")
    printf "\nwall seconds, median (min) over the runs whose guest printed ok; ratio = median / 1 node\n"
    printf "%-10s", "workload"
    for (ci = 1; ci <= nc; ci++) printf " | %-22s", label(C[ci])
    printf "\n"
    for (wi = 1; wi <= nw; wi++) {
      w = W[wi]; base = 0
      printf "%-10s", w
      for (ci = 1; ci <= nc; ci++) {
        c = C[ci]; m = n[w, c] + 0
        if (m == 0) { printf " | %-22s", "failed (" total[w, c] + 0 " runs)"; continue }
        for (k = 1; k <= m; k++) a[k] = s[w, c, k]
        sortn(a, m); md = med(a, m)
        if (c == 1) base = md
        cell = sprintf("%.2f (%.2f)", md, a[1])
        if (base > 0) cell = cell sprintf(" %.2fx", md / base)
        if (m < total[w, c]) cell = cell sprintf(" %d/%d ok", m, total[w, c])
        printf " | %-22s", cell
      }
      printf "\n"
    }
  }' "$samples"
