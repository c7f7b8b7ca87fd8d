# Scenario 5: failure and recovery on real VFs.
# lab: emulated NIC only
use_first_pf

# An unsupported setting fails ADD by name and leaves the VF as it was.
vf=$(vf_address "$pf" 4)
vfdev=$(vf_netdev "$vf")
before_pf=$(vf_line "$pfdev" 4)
before_link=$(link_summary "$vfdev")
ip netns add pod5
config=$(netconf "$vf" ',"vlan":300,"mac":"02:00:00:00:05:05","link_state":"enable"' 10.50.0.0/24)
if out=$(echo "$config" | cni ADD c5 pod5 net1); then fail "ADD with link_state on igb succeeded"; fi
echo "$out" | grep -qF "set link_state on $pfdev vf 4: EOPNOTSUPP (PF driver igb)" || fail "ADD said: $out"
[ "$(vf_line "$pfdev" 4)" = "$before_pf" ] || fail "PF side changed: $(vf_line "$pfdev" 4)"
[ "$(link_summary "$vfdev")" = "$before_link" ] || fail "netdev changed: $(link_summary "$vfdev")"
[ -z "$(ls /var/lib/cni/sriov/*.json 2>/dev/null)" ] || fail "a state file is left"

# A refused rate names both limits (igb has no minimum rate).
config=$(netconf "$vf" ',"min_tx_rate":10,"max_tx_rate":100' 10.50.0.0/24)
if out=$(echo "$config" | cni ADD c5 pod5 net1); then fail "ADD with min_tx_rate on igb succeeded"; fi
echo "$out" | grep -qF "set rate on $pfdev vf 4: EINVAL (min_tx_rate 10 max_tx_rate 100; PF driver igb)" || fail "ADD said: $out"
[ "$(vf_line "$pfdev" 4)" = "$before_pf" ] || fail "PF side changed: $(vf_line "$pfdev" 4)"

# The pod's namespace is deleted before DEL: the kernel returns the VF to
# the host as netN with the pod's MAC; DEL finds it and restores it.
config=$(netconf "$vf" ',"vlan":300,"mac":"02:00:00:00:05:05","mtu":1400' 10.50.0.0/24)
out=$(echo "$config" | cni ADD c5 pod5 net1) || fail "ADD: $out"
ip netns del pod5
sleep 0.5
out=$(echo "$config" | cni DEL c5 pod5 net1) || fail "DEL after the netns went: $out"
[ "$(vf_line "$pfdev" 4)" = "$before_pf" ] || fail "PF side not restored: $(vf_line "$pfdev" 4), was $before_pf"
[ "$(link_summary "$vfdev")" = "$before_link" ] || fail "netdev not restored: $(link_summary "$vfdev" 2>&1), was $before_link"

# The state file is gone (a reboot): DEL brings the VF out of the pod.
ip netns add pod6
config=$(netconf "$vf" ',"mtu":1400' 10.50.0.0/24)
out=$(echo "$config" | cni ADD c6 pod6 net1) || fail "ADD: $out"
rm /var/lib/cni/sriov/"$vf".json
out=$(echo "$config" | cni DEL c6 pod6 net1) || fail "DEL without a state file: $out"
ip -n pod6 link show net1 >/dev/null 2>&1 && fail "the VF stayed in the pod"
[ -n "$(ls "/sys/bus/pci/devices/$vf/net")" ] || fail "the VF netdev is not in the host"
ip netns del pod6
