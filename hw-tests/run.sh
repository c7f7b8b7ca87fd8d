#!/usr/bin/env bash
# Runs the lab: boots a real kernel under QEMU with two emulated Intel 82576
# SR-IOV NICs and runs every scenario in guest/scenarios against the real
# igb/igbvf drivers. Exits with the scenarios' status; prints the guest
# console when anything fails. Run as root on Debian bookworm.
# lab.py boots the guest and watches its console: a boot that goes silent
# is diagnosed, ended and booted again once (its settings, LAB_STALL_SECS,
# LAB_RETRIES and the rest, are at its top).
#   run.sh --bench   runs guest/bench.sh instead and prints its figures.
#   run.sh --demo    runs guest/demo.sh instead (the README's main job): two
#                    pods get a VF each through the device plugin and the CNI,
#                    and ping each other.
#   LAB_ONLY="03-* 12-*" run.sh
#                    runs only the scenarios whose names match those globs.
#   LAB_PFS="0000:3b:00.0 ..." run.sh --hardware
#                    runs the scenarios on this host's real SR-IOV NICs
#                    instead, on those PFs only (see hardware.sh).
set -euo pipefail
mode=test
case "${1:-}" in
--bench) mode=bench ;;
--demo) mode=demo ;;
--hardware) exec "$(dirname "$0")/hardware.sh" ;;
"") ;;
*) echo "usage: run.sh [--bench | --demo | --hardware]" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
cache=${LAB_CACHE:-/var/cache/sriov-lab}
. "$here/../scripts/step.sh"

step "lab: QEMU 10 (bookworm-backports) and a Debian kernel" "first run about 2 min, then nothing" \
    "$here/setup.sh"
# The executables the image ships, and the lab's helpers built alongside.
out=$(step "lab: building the static executables" "first run about 10 min on 2 cores, then seconds" \
    "$here/../deploy/build-static.sh" -p sriovnet --example vf -p sriov-cni --example cni-bench \
    -p kubelet-api --features kubelet-api/fake-kubelet --example fake-kubelet \
    -p sriov-device-plugin --example fake-apiserver)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
kernel=$cache/kernel
step "lab: building the guest's initramfs" "a few seconds" \
    "$here/build-initramfs.sh" "$kernel" "$work/initramfs.gz" \
    "$out/sriov-device-plugin" "$out/sriov" "$out/examples/vf" "$out/examples/cni-bench" \
    "$out/examples/fake-kubelet" "$out/examples/fake-apiserver"

case $mode in
test) usual="about 3 min under TCG on 2 cores, 5 on a busy machine" ;;
demo) usual="about 25 s" ;;
bench) usual="about 1 min" ;;
esac
step "lab: booting the guest under QEMU ($mode)" "$usual" \
    python3 "$here/lab.py" "$mode" "$(echo "$kernel"/boot/vmlinuz-*)" "$work/initramfs.gz" "$work"
