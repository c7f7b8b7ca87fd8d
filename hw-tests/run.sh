#!/usr/bin/env bash
# Runs the lab: boots a real kernel under QEMU with two emulated Intel 82576
# SR-IOV NICs and runs every scenario in guest/scenarios against the real
# igb/igbvf drivers. Exits with the scenarios' status; prints the guest
# console when anything fails. Run as root on Debian bookworm.
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

"$here/setup.sh"
# The executables the image ships, and the lab's helpers built alongside.
out=$("$here/../deploy/build-static.sh" -p sriovnet --example vf -p sriov-cni --example cni-bench \
    -p kubelet-api --features kubelet-api/fake-kubelet --example fake-kubelet \
    -p sriov-device-plugin --example fake-apiserver)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
kernel=$cache/kernel
"$here/build-initramfs.sh" "$kernel" "$work/initramfs.gz" \
    "$out/sriov-device-plugin" "$out/sriov" "$out/examples/vf" "$out/examples/cni-bench" \
    "$out/examples/fake-kubelet" "$out/examples/fake-apiserver"

# KVM here may be PVM-based, where a stock kernel does not boot: use TCG then.
accel=tcg
if [ -w /dev/kvm ] && [ ! -e /sys/module/kvm_pvm ] && { [ -e /sys/module/kvm_intel ] || [ -e /sys/module/kvm_amd ]; }; then
    accel=kvm
fi

# Each NIC hangs off its own root port and a hub with nothing else on it:
# no guest packet leaves QEMU.
nics=()
for n in 1 2; do
    nics+=(-device "pcie-root-port,id=rp$n,chassis=$n,slot=$n"
        -netdev "hubport,id=n$n,hubid=$n"
        -device "igb,netdev=n$n,bus=rp$n,mac=52:54:00:12:34:5$n")
done

console=$work/console.log
only=${LAB_ONLY:-}
only=${only// /,}
status=0
timeout "${LAB_TIMEOUT:-600}" qemu-system-x86_64 \
    -M q35,kernel-irqchip=split -accel "$accel" -cpu max -smp 2 -m 1024 \
    -nographic -no-reboot -nodefaults -serial "file:$console" \
    -device intel-iommu,intremap=on,caching-mode=on \
    "${nics[@]}" \
    -kernel "$kernel"/boot/vmlinuz-* -initrd "$work/initramfs.gz" \
    -append "console=ttyS0 panic=-1 oops=panic quiet loglevel=3 intel_iommu=on iommu=pt rdinit=/init lab.mode=$mode lab.only=$only" ||
    status=$?

if [ "$mode" = bench ]; then
    grep -ao 'bench: .*' "$console" | tr -d '\r'
    grep -q 'bench: .*ADD' "$console" || { tr -d '\r' <"$console" >&2; exit 1; }
    exit 0
fi
if [ "$mode" = demo ]; then
    grep -ao 'demo: .*' "$console" | tr -d '\r' | sed 's/^demo: //'
    grep -q '^demo: done' "$console" || { echo "demo: failed; guest console:" >&2; tr -d '\r' <"$console" >&2; exit 1; }
    exit 0
fi
grep -ao 'lab: .*' "$console" | tr -d '\r' || true
summary=$(grep -ao 'lab: [0-9]* passed, [0-9]* failed, [0-9]* skipped' "$console" | tr -d '\r' || true)
if [ "$status" -ne 0 ] || [ -z "$summary" ] || ! echo "$summary" | grep -q ' 0 failed'; then
    echo "lab: failed (qemu exit $status, accel $accel); guest console:" >&2
    tr -d '\r' <"$console" >&2
    exit 1
fi
