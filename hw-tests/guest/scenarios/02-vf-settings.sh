# sriovnet's VF settings through the PF on the real igb driver: each setting
# igb supports is applied and read back both by sriovnet and by iproute2;
# those igb refuses fail with an error naming setting, PF, VF and errno.
# lab: emulated NIC only
pf=$(pfs | head -1)
pfdev=$(ls "/sys/bus/pci/devices/$pf/net")
set_num_vfs "$pf" 7
link_up "$pfdev"

expect() { # what `vf` printed must contain $1
    echo "$out" | grep -qF -- "$1" || fail "expected '$1' in: $out"
}
iplink() { # the VF 2 line of `ip link show` must contain $1
    ip link show "$pfdev" | grep '    vf 2 ' | grep -qF -- "$1" ||
        fail "ip link show: expected '$1' in: $(ip link show "$pfdev" | grep '    vf 2 ')"
}

out=$(vf "$pfdev" 2 mac 02:00:00:00:02:02); expect "vf 2 mac 02:00:00:00:02:02"; iplink "link/ether 02:00:00:00:02:02"
out=$(vf "$pfdev" 2 vlan 100 qos 3 proto 802.1q); expect "vlan 100 qos 3 proto 802.1q"; iplink "vlan 100, qos 3"
out=$(vf "$pfdev" 2 spoofchk off); expect "spoofchk off"; iplink "spoof checking off"
out=$(vf "$pfdev" 2 trust on); expect "trust on"; iplink "trust on"
out=$(vf "$pfdev" 2 rate 0 500); expect "max_tx_rate 500"; iplink "max_tx_rate 500Mbps"
out=$(vf "$pfdev" 2 vlan 0 qos 0 proto 802.1q); expect "vlan 0 qos 0"

# Other VFs were not touched.
vf "$pfdev" | grep "^vf 3 " | grep -qF "vlan 0 qos 0 proto 802.1q spoofchk on trust off" || fail "vf 3 changed: $(vf "$pfdev")"

refused() { # vf must fail with exactly this message
    if err=$(vf "$pfdev" 2 "$@" 2>&1); then fail "vf $* succeeded"; fi
    echo "$err" | grep -qxF -- "vf: $expected" || fail "vf $*: '$err', expected 'vf: $expected'"
}
expected="set link_state on $pfdev vf 2: EOPNOTSUPP"; refused state enable
expected="set rate on $pfdev vf 2: EINVAL"; refused rate 100 500
expected="set vlan on $pfdev vf 2: EPROTONOSUPPORT"; refused vlan 100 qos 0 proto 802.1ad
