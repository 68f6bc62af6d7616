#!/bin/bash
# The real Debian kernel must find CPUs and devices through OUR tables alone: QEMU microvm runs
# with its own ACPI off (acpi=off), acpi_dump's image is loaded at 0xE0000 (where the kernel
# scans for the RSDP), and the DSDT describes QEMU's 8 virtio-mmio transports (0xFEB00000 +
# i*0x200, GSI 5+i), which this kernel cannot find any other way. Pass: 2 CPUs via the MADT, the
# virtio-blk disk readable via the DSDT, no ACPI errors. QEMU TCG, so it runs on any host.
# Skips (passes with a message) without qemu-system-x86_64 or the guest image from
# tools/make-guest.sh (out/guest, or $AMALGAM_GUEST_DIR).
set -euo pipefail

dump=$1
guest=${AMALGAM_GUEST_DIR:-}
if [[ -z $guest ]]; then
  build=$(realpath vmm/acpi/BUILD)
  guest=${build%vmm/acpi/BUILD}out/guest
fi
if ! command -v qemu-system-x86_64 >/dev/null; then
  echo "SKIPPED: qemu-system-x86_64 not installed (tools/setup.sh installs it)"
  exit 0
fi
if [[ ! -f $guest/vmlinux || ! -f $guest/initramfs.cpio.gz ]]; then
  echo "SKIPPED: no guest image in $guest; build it with tools/make-guest.sh"
  exit 0
fi

work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/acpiq.XXXXXX")
virtio=()
for i in 0 1 2 3 4 5 6 7; do
  virtio+=(--virtio "$((0xfeb00000 + i * 0x200)):0x200:$((5 + i))")
done
# QEMU's PIT raises IOAPIC pin 2, hence the IRQ0 -> GSI2 override.
"$dump" "$work/tables.bin" --vcpus 2 --irq0-to-gsi2 "${virtio[@]}"
marker="amalgam-acpi-disk-$$"
truncate -s 1M "$work/disk.img"
printf '%s' "$marker" | dd of="$work/disk.img" conv=notrunc status=none
# Without a TSC frequency the kernel sometimes hangs calibrating against the PIT under TCG.
khz=$(awk -F: '/^cpu MHz/ { printf "%d", $2 * 1000; exit }' /proc/cpuinfo)
khz=${khz:-2000000}
timeout 240 qemu-system-x86_64 -M microvm,acpi=off -accel tcg -cpu max -m 256 -smp 2 \
  -nodefaults -no-user-config -nographic -no-reboot -serial stdio \
  -kernel "$guest/vmlinux" -initrd "$guest/initramfs.cpio.gz" \
  -append "console=ttyS0 panic=-1 tsc_early_khz=$khz halt=reboot reboot=t run=\"nproc; head -c ${#marker} /dev/vda; echo\"" \
  -device "loader,file=$work/tables.bin,addr=0xe0000,force-raw=on" \
  -drive "id=d0,file=$work/disk.img,format=raw,if=none" -device virtio-blk-device,drive=d0 \
  </dev/null >"$work/console.raw" 2>&1 || true
log=$work/console.log
tr -d '\r' <"$work/console.raw" >"$log"  # the serial console ends lines with CR LF

fail=0
expect() {
  if ! grep -qF -- "$1" "$log"; then
    echo "FAIL: missing '$1' ($2)"
    fail=1
  fi
}
expect "ACPI: RSDP 0x00000000000E0000 000024 (v02 AMLGAM)" "the kernel used our RSDP"
expect "ACPI: Using ACPI (MADT) for SMP configuration information" "MADT parsed"
expect "ACPI: 1 ACPI AML tables successfully acquired and loaded" "DSDT loaded"
expect "ttyS0 at I/O 0x3f8" "COM1"
expect "GUEST-RUN-EXIT=0" "the guest ran its command"
# nproc's output is the line right after GUEST-MODULES.
if ! grep -A1 '^GUEST-MODULES' "$log" | tail -n1 | grep -qx '2'; then
  echo "FAIL: the guest does not see 2 CPUs (MADT)"
  fail=1
fi
expect "$marker" "virtio-blk found through the DSDT and readable"
if grep -E 'ACPI (BIOS )?(Error|Warning)|ACPI Exception' "$log"; then
  echo "FAIL: the kernel reported ACPI problems"
  fail=1
fi
if ((fail)); then
  echo "---- console ----"
  cat "$log"
  exit 1
fi
echo "PASS: Debian $(grep -o 'Linux version [^ ]*' "$log" | head -n1) booted on amalgam's ACPI tables"
