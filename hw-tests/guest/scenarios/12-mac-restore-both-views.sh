# Scenario 12: MACs come back exactly, whichever way the NIC reports a VF's
# MAC before the first ADD. On igb, the PF's view of a fresh VF is
# 00:00:00:00:00:00; once the VF netdev has been opened and closed on the
# host it is the VF's own random MAC. Each sequence runs in both views:
# ADD/DEL with a MAC and every setting, DEL after the pod's namespace was
# deleted, ADD/DEL twice without a MAC then ADD with one, and DEL after
# ADD was killed.
use_first_pf

# Fresh VFs, in the view asked for ($1: zero or own) for VF index $2.
ready_vf() {
    vf=$(vf_address "$pf" "$2")
    vfdev=$(vf_netdev "$vf")
    if [ "$1" = own ]; then
        ip link set "$vfdev" up
        ip link set "$vfdev" down
        vf_line "$pfdev" "$2" | grep -q "mac 00:00:00:00:00:00" && fail "the VF did not report its MAC"
    else
        vf_line "$pfdev" "$2" | grep -q "mac 00:00:00:00:00:00" || fail "a fresh VF reports a MAC: $(vf_line "$pfdev" "$2")"
    fi
    before_pf=$(vf_line "$pfdev" "$2")
    before_link=$(link_summary "$vfdev")
}

# The VF is exactly as before ($1 says after what).
same() {
    [ "$(vf_line "$pfdev" "$index")" = "$before_pf" ] || fail "$1: PF side $(vf_line "$pfdev" "$index"), was $before_pf"
    [ "$(link_summary "$vfdev" 2>&1)" = "$before_link" ] || fail "$1: netdev $(link_summary "$vfdev" 2>&1), was $before_link"
    [ -z "$(ls /var/lib/cni/sriov/*.json 2>/dev/null)" ] || fail "$1: a state file is left"
}

for view in zero own; do
    set_num_vfs "$pf" 7
    link_up "$pfdev"
    echo "== PF view: $view"

    index=0; ready_vf "$view" 0
    ip netns add m1
    config=$(netconf "$vf" ',"vlan":10,"vlanQoS":3,"mac":"02:00:00:00:00:10","spoofchk":"off","trust":"on","max_tx_rate":100' 10.12.0.0/24)
    out=$(echo "$config" | cni ADD m1 m1 net1) || fail "$view: ADD: $out"
    ip -n m1 -o link show net1 | grep -q "link/ether 02:00:00:00:00:10" || fail "$view: the pod has no 02:00:00:00:00:10"
    out=$(echo "$config" | cni DEL m1 m1 net1) || fail "$view: DEL: $out"
    same "$view: ADD/DEL"

    # The pod's namespace deleted first: the VF comes back as netN.
    out=$(echo "$config" | cni ADD m2 m1 net1) || fail "$view: ADD: $out"
    ip netns del m1
    sleep 0.3
    out=$(echo "$config" | cni DEL m2 m1 net1) || fail "$view: DEL after the netns went: $out"
    same "$view: DEL after netns deletion"

    # Used twice without a MAC, then with one: the VF must still take it.
    index=1; ready_vf "$view" 1
    ip netns add m3
    plain=$(netconf "$vf" '' 10.12.0.0/24)
    with_mac=$(netconf "$vf" ',"mac":"02:00:00:00:00:33"' 10.12.0.0/24)
    for round in 1 2; do
        out=$(echo "$plain" | cni ADD m3 m3 net1) || fail "$view: ADD without mac ($round): $out"
        out=$(echo "$plain" | cni DEL m3 m3 net1) || fail "$view: DEL without mac ($round): $out"
    done
    out=$(echo "$with_mac" | cni ADD m3 m3 net1) || fail "$view: ADD with mac after two without: $out"
    ip -n m3 -o link show net1 | grep -q "link/ether 02:00:00:00:00:33" || fail "$view: the pod has no 02:00:00:00:00:33"
    out=$(echo "$with_mac" | cni DEL m3 m3 net1) || fail "$view: DEL: $out"
    same "$view: ADD twice without mac, then with"
    ip netns del m3

    # Killed during ADD, then DEL.
    index=2; ready_vf "$view" 2
    config=$(netconf "$vf" ',"vlan":20,"mac":"02:00:00:00:00:20","spoofchk":"off","mtu":1400' 10.12.0.0/24)
    echo "$config" >/tmp/k.json
    for delay in 0.03 0.08; do
        ip netns add mk
        killed_add /tmp/k.json mk mk "$delay"
        out=$(echo "$config" | cni DEL mk mk net1) || fail "$view: DEL after a kill at ${delay}s: $out"
        same "$view: kill at ${delay}s"
        ip netns del mk
    done
done
[ -z "$(ls /run/ipam/lab 2>/dev/null | grep '^10\.')" ] || fail "an IPAM lease is left: $(ls /run/ipam/lab)"
