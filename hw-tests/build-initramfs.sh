#!/usr/bin/env bash
# Builds the guest's initramfs: busybox, dash as /bin/sh (busybox's shell
# would run its own reduced `ip`), the host's iproute2, the kernel modules the
# emulated NIC needs, the project's binaries and the scenarios.
#   build-initramfs.sh KERNEL_DIR OUTPUT BINARY...
set -euo pipefail
kernel=$1 output=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
version=$(ls "$kernel/lib/modules")
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,run,lib/modules,lab,var/lib}
ln -s ../run "$root/var/run"
cp /bin/busybox "$root/bin/busybox"
for applet in $(busybox --list); do
    case $applet in ip | sh | busybox) ;; *) ln -s busybox "$root/bin/$applet" ;; esac
done

# Executables with the libraries ldd names (none for static ones).
copy_with_libs() {
    install -D "$1" "$root$2"
    { ldd "$1" || true; } | { grep -o '/[^ ]*' || true; } | while read -r lib; do
        install -D "$lib" "$root$lib"
    done
}
copy_with_libs /bin/dash /bin/sh
copy_with_libs "$(command -v ip)" /sbin/ip
copy_with_libs /usr/lib/cni/host-local /usr/lib/cni/host-local
for binary in "$@"; do
    copy_with_libs "$binary" "/bin/$(basename "$binary")"
done

# igb, igbvf, vfio-pci and what they depend on, in load order.
declare -A module_path loaded
while read -r path; do
    name=$(basename "$path" .ko)
    module_path[${name//-/_}]=$path
done < <(find "$kernel/lib/modules/$version/kernel" -name '*.ko')
load_order=()
add_module() {
    local name=${1//-/_}
    [ -n "${loaded[$name]:-}" ] && return
    loaded[$name]=1
    local path=${module_path[$name]:-}
    [ -n "$path" ] || return 0 # built into the kernel
    local dep
    for dep in $(modinfo -F depends "$path" | tr ',' ' '); do add_module "$dep"; done
    cp "$path" "$root/lib/modules/"
    load_order+=("$(basename "$path")")
}
# macvlan, 8021q and bridge: what a pod may stack on its VF (scenario 13).
for module in igb igbvf vfio_pci macvlan 8021q bridge; do add_module "$module"; done
printf '%s\n' "${load_order[@]}" >"$root/lib/modules/load-order"

cp "$here/guest/init" "$root/init"
cp -r "$here/guest/lib.sh" "$here/guest/run-scenarios.sh" "$here/guest/bench.sh" "$here/guest/demo.sh" "$here/guest/scenarios" "$root/lab/"
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$output"
