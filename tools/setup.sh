#!/bin/bash
# Installs everything amalgam needs to build, test and run, from Debian 12's packages only.
# Idempotent: does nothing (and needs no network) when all packages are already present.
set -euo pipefail

PACKAGES=(
  # build
  bazel-bootstrap pkg-config clang lld libclang-rt-14-dev binutils
  # libraries (headers + pkg-config files)
  libabsl-dev libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  capnproto libcapnp-dev catch2 libdpdk-dev dpdk libsodium-dev prometheus-cpp-dev
  # tests and benchmarks: the QEMU peer, ACPI disassembler, network namespaces
  qemu-system-x86 acpica-tools iproute2 socat shellcheck
  # TLS test certificates (made at test time, never committed)
  openssl
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  SUDO=sudo
else
  SUDO=
fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
