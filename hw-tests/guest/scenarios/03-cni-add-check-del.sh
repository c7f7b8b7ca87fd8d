# Scenario 3: CNI ADD / CHECK / DEL on a real VF with vlan + qos, mac,
# spoofchk, trust, max_tx_rate, mtu and host-local IPAM, checked from the PF
# and inside the pod; DEL restores every field, the name and the namespace.
use_first_pf
vf=$(vf_address "$pf" 1)
vfdev=$(vf_netdev "$vf")
ip link property add dev "$vfdev" altname lab-vf1
before_pf=$(vf_line "$pfdev" 1)
before_link=$(link_summary "$vfdev")
echo "before: $before_pf / $before_link"

ip netns add pod1
config=$(netconf "$vf" ',"vlan":100,"vlanQoS":3,"mac":"02:00:00:00:01:01","spoofchk":"off","trust":"on","max_tx_rate":500,"mtu":1400' 10.10.0.0/24)
result=$(echo "$config" | cni ADD c1 pod1 net1) || fail "ADD: $result"
echo "ADD: $result"
echo "$result" | grep -q '"address":"10.10.0.2/24"' || fail "no address in the result"

now=$(vf_line "$pfdev" 1)
for want in "mac 02:00:00:00:01:01" "vlan 100 qos 3 proto 802.1q" "spoofchk off trust on" "max_tx_rate 500"; do
    echo "$now" | grep -qF "$want" || fail "PF side: '$want' not in: $now"
done
ip link show "$pfdev" | grep '    vf 1 ' | grep -q 'vlan 100, qos 3' || fail "ip link show: no vlan 100 qos 3"
inside=$(ip -n pod1 -o link show net1) || fail "no net1 in the pod"
for want in "mtu 1400" "link/ether 02:00:00:00:01:01" ",UP"; do
    echo "$inside" | grep -qF "$want" || fail "pod: '$want' not in: $inside"
done
ip -n pod1 -o addr show net1 | grep -qF "10.10.0.2/24" || fail "pod: no 10.10.0.2/24"
ip -n pod1 route | grep -qF "default via 10.10.0.1 dev net1" || fail "pod: no default route"
[ ! -e "/sys/class/net/$vfdev" ] || fail "$vfdev is still in the host"

checked=$(echo "$config" | sed "s|}\$|,\"prevResult\":$result}|")
echo "$checked" | cni CHECK c1 pod1 net1 || fail "CHECK failed on a fresh attachment"
ip -n pod1 link set net1 mtu 1300
if out=$(echo "$checked" | cni CHECK c1 pod1 net1); then fail "CHECK missed an MTU change"; fi
echo "$out" | grep -qF 'net1 has MTU 1300, the config says 1400' || fail "CHECK said: $out"

echo "$config" | cni DEL c1 pod1 net1 || fail "DEL failed"
after_pf=$(vf_line "$pfdev" 1)
after_link=$(link_summary "$vfdev") || fail "$vfdev is not back in the host"
[ "$after_pf" = "$before_pf" ] || fail "PF side not restored: $after_pf, was $before_pf"
[ "$after_link" = "$before_link" ] || fail "netdev not restored: $after_link, was $before_link"
[ -z "$(ls /var/lib/cni/sriov/*.json 2>/dev/null)" ] || fail "a state file is left"
echo "$config" | cni DEL c1 pod1 net1 || fail "a second DEL failed"
ip netns del pod1
