#!/bin/bash
# Builds the freestanding test guest. Called by the //guest:test_guest genrule with explicit
# flags (not cc_binary), so no Bazel --copt/--config (sanitizers!) can ever reach the guest.
#   build.sh CC OUT.elf linker.ld SRC...
set -euo pipefail
cc=$1 out=$2 lds=$3
shift 3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cflags=(
  --target=x86_64-linux-gnu -march=x86-64 -mtune=generic -O2 -std=gnu11
  -ffreestanding -fno-builtin -nostdlib -fno-pic -fno-pie -mno-red-zone
  -mgeneral-regs-only -mno-80387 -fno-stack-protector -fcf-protection=none
  -fno-asynchronous-unwind-tables -fno-unwind-tables -fno-zero-initialized-in-bss
  -fno-omit-frame-pointer -Wall -Wextra -Werror -Wno-unused-parameter
)
objs=()
for src in "$@"; do
  case "$src" in
    *.c|*.S) ;;
    *) continue ;;  # headers are inputs only
  esac
  obj="$tmp/$(basename "$src").o"
  "$cc" "${cflags[@]}" -I"$(dirname "$src")" -c "$src" -o "$obj"
  objs+=("$obj")
done
"$cc" --target=x86_64-linux-gnu -nostdlib -static -fuse-ld=lld \
  -Wl,-T,"$lds" -Wl,--build-id=none -Wl,-z,max-page-size=4096 -Wl,-z,noexecstack \
  -o "$out" "${objs[@]}"
