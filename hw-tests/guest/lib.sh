# Helpers for scenarios, sourced in the scenario's subshell; the first
# failing command fails the scenario.
set -eu

fail() { echo "FAIL: $*"; exit 1; }

# The PCI addresses of the PFs under test: LAB_PFS on real hardware, else
# the emulated 82576s.
pfs() {
    if [ -n "${LAB_PFS:-}" ]; then printf '%s\n' $LAB_PFS; else ls /sys/bus/pci/drivers/igb | grep '^0000:'; fi
}

# A PCI function's "vendor:device" ids and its driver's name.
pci_ids() { echo "$(sed 's/^0x//' "/sys/bus/pci/devices/$1/vendor"):$(sed 's/^0x//' "/sys/bus/pci/devices/$1/device")"; }
pci_driver() { basename "$(readlink "/sys/bus/pci/devices/$1/driver")"; }

# Sets a PF's VF count (through 0: the driver refuses n -> m directly) and
# waits for every VF netdev to appear.
set_num_vfs() {
    pf=$1 count=$2
    echo 0 >"/sys/bus/pci/devices/$pf/sriov_numvfs"
    echo "$count" >"/sys/bus/pci/devices/$pf/sriov_numvfs"
    for _ in $(seq 100); do
        ready=0
        for vf in /sys/bus/pci/devices/$pf/virtfn*; do
            [ -d "$vf/net" ] && ready=$((ready + 1))
        done
        [ "$ready" -eq "$count" ] && return 0
        sleep 0.1
    done
    fail "$pf: only $ready of $count VF netdevs appeared"
}

# Brings a netdev up and waits for carrier (igb refuses rate limits on a PF
# whose link is down).
link_up() {
    ip link set "$1" up
    for _ in $(seq 100); do
        [ "$(cat "/sys/class/net/$1/carrier" 2>/dev/null)" = 1 ] && return 0
        sleep 0.1
    done
    fail "$1: no carrier"
}

# The VF with index $2 of PF $1, and its netdev.
vf_address() { basename "$(readlink "/sys/bus/pci/devices/$1/virtfn$2")"; }
vf_netdev() { ls "/sys/bus/pci/devices/$1/net"; }

# Runs the CNI plugin: cni COMMAND CONTAINER NETNS-NAME IFNAME < config
cni() {
    CNI_COMMAND=$1 CNI_CONTAINERID=$2 CNI_NETNS=/var/run/netns/$3 CNI_IFNAME=$4 \
        CNI_PATH=/usr/lib/cni sriov
}

# ADD of net1 with the config in file $1, killed with SIGKILL after $4
# seconds: killed_add FILE CONTAINER NETNS-NAME DELAY
killed_add() {
    CNI_COMMAND=ADD CNI_CONTAINERID=$2 CNI_NETNS=/var/run/netns/$3 CNI_IFNAME=net1 \
        CNI_PATH=/usr/lib/cni sriov <"$1" >/dev/null 2>&1 &
    adder=$!
    sleep "$4"
    kill -9 "$adder" 2>/dev/null || true
    wait "$adder" 2>/dev/null || true
}

# A network config for VF $1 with extra fields $2 (a JSON fragment
# starting with a comma, or empty) and host-local in subnet $3.
netconf() {
    printf '{"cniVersion":"1.0.0","name":"lab","type":"sriov","deviceID":"%s"%s,"ipam":{"type":"host-local","subnet":"%s","routes":[{"dst":"0.0.0.0/0"}],"dataDir":"/run/ipam"}}' "$1" "$2" "$3"
}

# The PF's view of VF $2 as the vf example prints it.
vf_line() { vf "$1" | grep "^vf $2 "; }

# A netdev's name, MTU, MAC, altnames and admin state, for comparing. Not
# its permanent address: igbvf copies each MAC its PF assigns into it, and
# nothing in userspace can set it back.
link_summary() {
    ip -o link show "$1" | sed -E 's/^[0-9]+: //; s/ qdisc [^ ]+//; s/ state [A-Z]+//; s/ mode [A-Z]+//; s/ group [a-z]+//; s/ qlen [0-9]+//; s/ permaddr [0-9a-f:]+//; s/\\//g; s/ +/ /g'
}

# Waits for carrier on a link inside a named netns.
pod_link_up() {
    for _ in $(seq 100); do
        ip -n "$1" -o link show "$2" | grep -q LOWER_UP && return 0
        sleep 0.1
    done
    fail "$1/$2: no carrier: $(ip -n "$1" -o link show "$2")"
}

# The first PF with 7 VFs and its link up: sets $pf and $pfdev.
use_first_pf() {
    pf=$(pfs | head -1)
    pfdev=$(vf_netdev "$pf")
    set_num_vfs "$pf" 7
    link_up "$pfdev"
}

# Binds VF $1 to vfio-pci; sets $group, its IOMMU group (/dev/vfio/$group).
bind_vfio() {
    echo vfio-pci >"/sys/bus/pci/devices/$1/driver_override"
    echo "$1" >"/sys/bus/pci/devices/$1/driver/unbind"
    echo "$1" >/sys/bus/pci/drivers_probe
    [ "$(basename "$(readlink "/sys/bus/pci/devices/$1/driver")")" = vfio-pci ] || fail "$1 is not on vfio-pci"
    group=$(basename "$(readlink "/sys/bus/pci/devices/$1/iommu_group")")
    [ -c "/dev/vfio/$group" ] || fail "no /dev/vfio/$group"
}

# Waits up to 10 s for command $1 (a string) to succeed.
wait_until() {
    for _ in $(seq 100); do
        eval "$1" && return 0
        sleep 0.1
    done
    fail "timed out waiting for: $1"
}

plugins=/run/kubelet/device-plugins

# The fake kubelet (kubelet-api's fake-kubelet example) and the device
# plugin with config $1, until the scenario ends. The kubelet prints
# registrations and every ListAndWatch list to /tmp/kubelet.out.
start_device_plugin() {
    mkdir -p "$plugins"
    echo "$1" >/tmp/dp.json
    fake-kubelet watch "$plugins" >/tmp/kubelet.out 2>&1 &
    kubelet_pid=$!
    wait_until "[ -S $plugins/kubelet.sock ]"
    sriov-device-plugin --config-file /tmp/dp.json --device-plugin-dir "$plugins" 2>/tmp/dp.log &
    dp_pid=$!
    trap 'kill $dp_pid $kubelet_pid 2>/dev/null; wait; echo "device plugin log:"; cat /tmp/dp.log' EXIT
}

# The last device list kubelet saw for resource $1: "ID=HEALTH ..." sorted.
last_list() {
    grep "^list $1 " /tmp/kubelet.out | tail -1 | cut -d' ' -f3- | tr ' ' '\n' | sort | tr '\n' ' ' | sed 's/ $//'
}

# Waits until kubelet's last list for resource $1 is exactly $2.
wait_list() {
    for _ in $(seq 100); do
        [ "$(last_list "$1")" = "$2" ] && return 0
        sleep 0.1
    done
    fail "$1: expected list [$2], kubelet last saw [$(last_list "$1")]"
}

# Every VF of PF $1 as "ADDRESS=$2 ..." sorted, for comparing with lists.
vfs_as() {
    for vf in /sys/bus/pci/devices/$1/virtfn*; do
        echo "$(basename "$(readlink "$vf")")=$2"
    done | sort | tr '\n' ' ' | sed 's/ $//'
}
