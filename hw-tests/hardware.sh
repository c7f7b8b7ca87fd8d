#!/usr/bin/env bash
# The lab's scenarios on a real SR-IOV host instead of the emulated NIC
# (`run.sh --hardware`), against the PFs named in LAB_PFS (PCI addresses,
# space-separated). Their VFs are destroyed and recreated and their links
# set down and up: use PFs dedicated to testing. Nothing else on the host is
# touched; a PF whose netdev carries a default route is refused. Scenarios
# that check what only the emulated 82576 does are skipped.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

[ -n "${LAB_PFS:-}" ] || {
    echo "hardware: set LAB_PFS to the PCI addresses of PFs dedicated to testing" >&2
    exit 2
}
routed=$(awk 'NR > 1 && $2 == "00000000" { print $1 }' /proc/net/route)
for pf in $LAB_PFS; do
    dir=/sys/bus/pci/devices/$pf
    [ -e "$dir/sriov_totalvfs" ] || { echo "hardware: $pf is not an SR-IOV PF" >&2; exit 2; }
    [ "$(cat "$dir/sriov_totalvfs")" -ge 7 ] || { echo "hardware: $pf has fewer than 7 VFs" >&2; exit 2; }
    for netdev in $(ls "$dir/net" 2>/dev/null); do
        if echo "$routed" | grep -qx "$netdev"; then
            echo "hardware: $pf ($netdev) carries a default route; refusing to touch it" >&2
            exit 2
        fi
    done
done

"$here/../scripts/install-deps.sh"
out=$("$here/../deploy/build-static.sh" -p sriovnet --example vf \
    -p kubelet-api --features kubelet-api/fake-kubelet --example fake-kubelet \
    -p sriov-device-plugin --example fake-apiserver)
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
for binary in sriov-device-plugin sriov examples/vf examples/fake-kubelet examples/fake-apiserver; do
    ln -s "$(realpath "$out/$binary")" "$bin/"
done
modprobe vfio-pci 2>/dev/null || echo "hardware: no vfio-pci module; the userspace VF scenarios will fail"
mkdir -p /run/netns
PATH=$bin:$PATH LAB_HARDWARE=1 LAB_DIR=$here/guest sh "$here/guest/run-scenarios.sh"
