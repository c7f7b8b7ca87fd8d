#!/usr/bin/env bash
# Installs the lab's host tools on Debian bookworm and caches a Debian kernel
# with the igb, igbvf and vfio-pci modules. Run as root; idempotent.
#   QEMU with `-device igb` needs >= 8: bookworm has 7.2, bookworm-backports 10.x.
set -euo pipefail
cache=${LAB_CACHE:-/var/cache/sriov-lab}

has_igb_qemu() {
    command -v qemu-system-x86_64 >/dev/null &&
        qemu-system-x86_64 -device help 2>/dev/null | grep -q '"igb"'
}

if ! has_igb_qemu || ! dpkg -s busybox-static >/dev/null 2>&1 || ! command -v cpio >/dev/null ||
    [ ! -x /usr/lib/cni/host-local ]; then
    backports=/etc/apt/sources.list.d/sriov-lab-backports.sources
    if [ ! -f "$backports" ]; then
        # The machine's own first Debian entry, with the suite changed: no host name is written here.
        awk 'BEGIN{RS=""; ORS="\n\n"} NR==1' /etc/apt/sources.list.d/debian.sources |
            sed 's/^Suites:.*/Suites: bookworm-backports/' >"$backports"
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        busybox-static cpio kmod containernetworking-plugins
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -t bookworm-backports qemu-system-x86
fi

mkdir -p "$cache"
if [ ! -f "$cache/kernel/ready" ]; then
    # The kernel the linux-image-amd64 metapackage points at, unpacked, not installed.
    image=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    [ -n "$image" ] || { echo "setup: no linux-image package found" >&2; exit 1; }
    rm -rf "$cache/kernel" && mkdir -p "$cache/kernel"
    (cd "$cache" && rm -f linux-image-*.deb && apt-get download "$image" >/dev/null)
    dpkg-deb -x "$cache"/linux-image-*.deb "$cache/kernel"
    rm -f "$cache"/linux-image-*.deb
    echo "$image" >"$cache/kernel/ready"
fi
