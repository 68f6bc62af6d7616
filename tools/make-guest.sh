#!/bin/bash
# Builds a Linux guest image from Debian 12's packages only (nothing is compiled, nothing goes
# into the host's /boot):
#   OUTDIR/vmlinuz            the bzImage of linux-image-<version>-cloud-amd64 (FLAVOR=amd64: generic)
#   OUTDIR/vmlinux            the ELF kernel extracted from the bzImage payload (PVH entry)
#   OUTDIR/config             the kernel's config
#   OUTDIR/initramfs.cpio     busybox-static + /init + the virtio modules (and .cpio.gz)
#   OUTDIR/disk.ext4          16 MiB ext4 test disk (label amgtest): /hello.txt and /data.bin
#                             (65536 16-byte lines "000000000000000\n".."000000000065535\n")
#   OUTDIR/manifest.txt       versions, module load order, sha256s
# usage: tools/make-guest.sh [OUTDIR]            (default: out/guest; .debs cached in OUTDIR/.cache)
# env:   FLAVOR=cloud-amd64|amd64   KPKG=linux-image-6.1.0-NN-cloud-amd64 (pin an exact kernel)
#
# /init protocol (kernel command line; unknown key=value parameters reach /init as variables):
#   prints "GUEST-READY t=<uptime>" once /dev, /proc, /sys are mounted,
#   insmods the bundled modules in dependency order ("mods=0" skips), prints "GUEST-MODULES ...",
#   run="cmd; cmd" runs through sh -c, then prints "GUEST-RUN-EXIT=<rc>",
#   prints "GUEST-HALT t=...", then powers off (default, needs ACPI), or halt=reboot (reboot -f;
#   with reboot=t on the cmdline that is a triple fault), or halt=shell.
# Re-runs produce byte-identical outputs from the same .debs (fixed mtimes, sorted cpio, gzip -n).
set -euo pipefail

OUTDIR=${1:-out/guest}
FLAVOR=${FLAVOR:-cloud-amd64}
KPKG=${KPKG:-}
CACHE="$OUTDIR/.cache"

# The modules /init loads (in dependency order, computed by modprobe). Missing ones are skipped
# with a warning: a flavour may build some in.
MODULES=(virtio virtio_ring virtio_mmio virtio_pci virtio_blk virtio_net virtio_console
  virtio_rng virtio_balloon vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport)

log() { echo "make-guest: $*" >&2; }
die() {
  echo "make-guest: error: $*" >&2
  exit 1
}

# --- host tools ---------------------------------------------------------------------------
install_host_tools() {
  local -a want=(cpio lz4 xz-utils zstd kmod busybox-static gzip bzip2 binutils e2fsprogs dpkg apt)
  local -a missing=()
  local p
  for p in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$p")
    fi
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing host tools: ${missing[*]}"
  local sudo=()
  [[ $(id -u) -ne 0 ]] && sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q || log "apt-get update failed; trying the cached lists"
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# --- downloads (cached) ------------------------------------------------------------------------
# Prints the path of PKG's .deb in the cache, downloading it first if needed.
fetch_deb() {
  local pkg=$1 f
  for f in "$CACHE/${pkg}"_*.deb; do
    if [[ -f $f ]]; then
      echo "$f"
      return 0
    fi
  done
  log "downloading $pkg"
  (cd "$CACHE" && apt-get download -q "$pkg" >&2) || die "apt-get download $pkg failed (network? apt-get update?)"
  for f in "$CACHE/${pkg}"_*.deb; do
    if [[ -f $f ]]; then
      echo "$f"
      return 0
    fi
  done
  die "apt-get download $pkg left no .deb in $CACHE"
}

# The versioned kernel package behind the linux-image-$FLAVOR metapackage.
resolve_kernel_package() {
  if [[ -n $KPKG ]]; then
    echo "$KPKG"
    return 0
  fi
  local dep
  dep=$(apt-cache depends "linux-image-$FLAVOR" 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
  if [[ -z $dep ]]; then
    # Offline: fall back to a cached kernel of this flavour.
    local f
    for f in "$CACHE"/linux-image-[0-9]*-"$FLAVOR"_*.deb; do
      [[ -f $f ]] && dep=$(basename "${f%%_*}")
    done
  fi
  [[ -n $dep ]] || die "cannot resolve linux-image-$FLAVOR (run apt-get update, or set KPKG=)"
  echo "$dep"
}

# --- bzImage -> vmlinux --------------------------------------------------------------------
# Little-endian unsigned integer of WIDTH bytes at OFFSET in FILE.
read_le() {
  local file=$1 offset=$2 width=$3
  od -An -t "u$width" -j "$offset" -N "$width" --endian=little "$file" | tr -d ' \n'
}

extract_vmlinux() {
  local bz=$1 out=$2 work=$3
  [[ $(dd if="$bz" bs=1 skip=$((0x202)) count=4 status=none) == HdrS ]] ||
    die "$bz: no 'HdrS' boot header at 0x202: not a bzImage"
  local setup_sects payload_offset payload_length
  setup_sects=$(read_le "$bz" $((0x1f1)) 1)
  ((setup_sects == 0)) && setup_sects=4
  payload_offset=$(read_le "$bz" $((0x248)) 4)
  payload_length=$(read_le "$bz" $((0x24c)) 4)
  local start=$(((setup_sects + 1) * 512 + payload_offset))
  local size
  size=$(stat -c %s "$bz")
  ((payload_length > 4 && start + payload_length <= size)) ||
    die "$bz: payload [$start, +$payload_length) is outside the file ($size bytes)"
  local payload="$work/payload"
  dd if="$bz" of="$payload" bs=64K iflag=skip_bytes,count_bytes skip="$start" \
    count="$payload_length" status=none
  # Every compressor the kernel uses except gzip appends the decompressed size (le32); gzip's own
  # trailer ends with the same field. Strip it for the others so the tools see no trailing junk.
  local expect magic body="$work/payload.body"
  expect=$(read_le "$payload" $((payload_length - 4)) 4)
  magic=$(od -An -t x1 -N 6 "$payload" | tr -d ' \n')
  head -c "$((payload_length - 4))" "$payload" >"$body"
  case $magic in
    1f8b*) gzip -dc <"$payload" >"$out" ;;
    fd377a585a00) xz -dc --single-stream <"$body" >"$out" ;;
    02214c18*) lz4 -dc <"$body" >"$out" ;;
    28b52ffd*) zstd -dcq <"$body" >"$out" ;;
    425a68*) bzip2 -dc <"$body" >"$out" ;;
    5d0000*) xz -dc --format=lzma <"$body" >"$out" ;;
    *) die "$bz: unknown payload compression (magic $magic)" ;;
  esac
  rm -f "$payload" "$body"
  [[ $(od -An -t x1 -N 4 "$out" | tr -d ' \n') == 7f454c46 ]] || die "decompressed payload is not an ELF file"
  local got
  got=$(stat -c %s "$out")
  ((got % 4294967296 == expect)) || die "vmlinux is $got bytes, the payload trailer says $expect"
}

# --- initramfs -----------------------------------------------------------------------------
write_init() {
  cat >"$1" <<'EOF'
#!/bin/sh
# amalgam guest /init (generated by tools/make-guest.sh). See the script's header for the protocol.
export PATH=/bin:/sbin
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t proc proc /proc
mount -t sysfs sysfs /sys
uptime_s() { cut -d' ' -f1 /proc/uptime; }
echo "GUEST-READY t=$(uptime_s)"
if [ "${mods:-1}" != 0 ]; then
  loaded=0
  failed=0
  while read -r m; do
    if insmod "/lib/modules/$m"; then loaded=$((loaded + 1)); else failed=$((failed + 1)); fi
  done </etc/modules.order
  echo "GUEST-MODULES loaded=$loaded failed=$failed t=$(uptime_s)"
fi
if [ -n "${run:-}" ]; then
  sh -c "$run"
  echo "GUEST-RUN-EXIT=$?"
fi
echo "GUEST-HALT t=$(uptime_s)"
case "${halt:-poweroff}" in
  shell) exec sh ;;
  reboot) reboot -f ;;
  *) poweroff -f ;;
esac
# Not reached unless the kernel could not power off; do not let init exit (that panics).
while :; do sleep 3600; done
EOF
  chmod 0755 "$1"
}

# Copies one module into the initramfs as a plain .ko, decompressing if the package ships it
# compressed. Prints the file name it used.
copy_module() {
  local src=$1 dir=$2 name
  name=$(basename "$src")
  case $name in
    *.ko.xz) xz -dc <"$src" >"$dir/${name%.xz}" && name=${name%.xz} ;;
    *.ko.zst) zstd -dcq <"$src" >"$dir/${name%.zst}" && name=${name%.zst} ;;
    *.ko.gz) gzip -dc <"$src" >"$dir/${name%.gz}" && name=${name%.gz} ;;
    *) cp "$src" "$dir/$name" ;;
  esac
  echo "$name"
}

build_initramfs() {
  local kroot=$1 kver=$2 bbroot=$3 root=$4 order_out=$5
  mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,mnt,etc,lib/modules}
  cp "$bbroot/bin/busybox" "$root/bin/busybox"
  local applet
  for applet in $("$root/bin/busybox" --list); do
    [[ $applet == busybox ]] || ln -sf busybox "$root/bin/$applet"
  done
  write_init "$root/init"

  local moddir
  if [[ -d $kroot/lib/modules/$kver ]]; then moddir=lib/modules; else moddir=usr/lib/modules; fi
  [[ -d $kroot/$moddir/$kver ]] || die "no modules for $kver in the kernel package"
  # modules.dep is not shipped in the .deb; build it on the unpacked tree.
  depmod -b "$kroot" "$kver" 2>/dev/null || depmod -b "$kroot/usr" "$kver"
  local base=$kroot
  [[ $moddir == usr/lib/modules ]] && base=$kroot/usr
  : >"$order_out"
  local m line path name
  declare -A seen=()
  for m in "${MODULES[@]}"; do
    if ! line=$(modprobe -d "$base" -S "$kver" --show-depends "$m" 2>/dev/null); then
      log "warning: module $m not found in $kver, skipped"
      continue
    fi
    while read -r kind path _; do
      [[ $kind == insmod ]] || continue
      [[ -n ${seen[$path]:-} ]] && continue
      seen[$path]=1
      name=$(copy_module "$path" "$root/lib/modules")
      echo "$name" >>"$order_out"
    done <<<"$line"
  done
  cp "$order_out" "$root/etc/modules.order"
}

# Deterministic newc archive: fixed mtimes, sorted names, root ownership.
pack_cpio() {
  local root=$1 out=$2
  find "$root" -exec touch -h -d @0 {} +
  (cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
    cpio -o -H newc -R 0:0 --reproducible --quiet) >"$out"
}

# A small ext4 disk for virtio-blk tests, byte-identical across runs: fixed UUID, hash seed and
# times (mkfs.ext4 -d copies the host files' ctime/atime, so debugfs resets them).
build_disk() {
  local work=$1 out=$2
  local uuid=6d7f1c2a-0b7e-4a55-9a41-2f0c5b7e9a10
  mkdir -p "$work/disk"
  echo "hello from the amalgam ext4 test disk" >"$work/disk/hello.txt"
  seq -f '%015g' 0 65535 >"$work/disk/data.bin"
  touch -d @0 "$work/disk" "$work/disk/hello.txt" "$work/disk/data.bin"
  rm -f "$out"
  E2FSPROGS_FAKE_TIME=1 mkfs.ext4 -q -F -L amgtest -U "$uuid" \
    -E "hash_seed=$uuid,root_owner=0:0" -d "$work/disk" "$out" 16M >/dev/null
  local p f
  for p in / /lost+found /hello.txt /data.bin; do
    for f in ctime atime; do echo "set_inode_field $p $f 0"; done
  done >"$work/debugfs.cmds"
  debugfs -w -f "$work/debugfs.cmds" "$out" >/dev/null 2>&1 || die "debugfs could not fix $out's times"
  e2fsck -fn "$out" >/dev/null 2>&1 || die "$out does not pass e2fsck"
}

main() {
  install_host_tools
  mkdir -p "$OUTDIR" "$CACHE"
  local kpkg kdeb bbdeb
  kpkg=$(resolve_kernel_package)
  kdeb=$(fetch_deb "$kpkg")
  bbdeb=$(fetch_deb busybox-static)

  local work
  work=$(mktemp -d "$OUTDIR/.work.XXXXXX")
  # shellcheck disable=SC2064  # expand $work now: it is local to main
  trap "rm -rf '$work'" EXIT
  log "unpacking $(basename "$kdeb")"
  dpkg-deb -x "$kdeb" "$work/kernel"
  dpkg-deb -x "$bbdeb" "$work/busybox"
  local kimage kver
  kimage=$(find "$work/kernel/boot" -name 'vmlinuz-*' -print -quit)
  [[ -n $kimage ]] || die "$kdeb has no /boot/vmlinuz-*"
  kver=${kimage##*/vmlinuz-}

  log "extracting vmlinux from the bzImage payload"
  extract_vmlinux "$kimage" "$work/vmlinux" "$work"
  log "building the initramfs"
  build_initramfs "$work/kernel" "$kver" "$work/busybox" "$work/root" "$work/modules.order"
  pack_cpio "$work/root" "$work/initramfs.cpio"
  gzip -9n <"$work/initramfs.cpio" >"$work/initramfs.cpio.gz"
  log "building the ext4 test disk"
  build_disk "$work" "$work/disk.ext4"
  cp "$kimage" "$work/vmlinuz"
  cp "$work/kernel/boot/config-$kver" "$work/config"

  local pvh="absent"
  local notes
  notes=$(readelf -n "$work/vmlinux" 2>/dev/null || true)
  if [[ $notes == *Xen* ]]; then
    pvh="present (Xen ELF notes)"
  fi
  {
    echo "kernel package: $kpkg ($(dpkg-deb -f "$kdeb" Version))"
    echo "kernel release: $kver"
    echo "busybox: $(dpkg-deb -f "$bbdeb" Version)"
    echo "boot protocol: $(printf '%d.%02d' "$(read_le "$kimage" $((0x207)) 1)" "$(read_le "$kimage" $((0x206)) 1)")"
    echo "vmlinux PVH notes: $pvh"
    for opt in VIRTIO_MMIO VIRTIO_MMIO_CMDLINE_DEVICES X86_MPPARSE PVH ACPI SERIAL_8250_CONSOLE; do
      echo "config $opt: $(grep -m1 -E "^CONFIG_$opt=|^# CONFIG_$opt is not set" "$work/config")"
    done
    echo "disk.ext4: /hello.txt = '$(cat "$work/disk/hello.txt")'," \
      "/data.bin sha256 $(sha256sum <"$work/disk/data.bin" | cut -d' ' -f1)"
    echo "module load order:"
    sed 's/^/  /' "$work/modules.order"
    echo "sha256:"
    (cd "$work" && sha256sum vmlinuz vmlinux config initramfs.cpio initramfs.cpio.gz disk.ext4 | sed 's/^/  /')
  } >"$work/manifest.txt"
  local f
  for f in vmlinuz vmlinux config initramfs.cpio initramfs.cpio.gz disk.ext4 manifest.txt; do
    mv -f "$work/$f" "$OUTDIR/$f"
  done
  log "done: $OUTDIR ($(wc -l <"$work/modules.order") modules)"
  ls -l "$OUTDIR" >&2
}

main "$@"
