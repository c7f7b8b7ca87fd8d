# Helpers for scenarios, sourced in the scenario's subshell; the first
# failing command fails the scenario.
set -eu

fail() { echo "FAIL: $*"; exit 1; }

# The PCI addresses of the emulated 82576 PFs.
pfs() { ls /sys/bus/pci/drivers/igb | grep '^0000:'; }

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
