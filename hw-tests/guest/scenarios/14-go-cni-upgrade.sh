# Scenario 14: attachments the Go sriov-cni made before the node switched
# to ours. The VF is left as the Go plugin's ADD leaves it (VLAN, MAC and
# spoof check set through the PF, the netdev in the pod as net1 with the
# pod's MAC, a host-local lease), with its cache and allocation file in the
# Go plugin's exact format (keys as Go's encoding/json writes them, sorted).
# Our DEL must put the VF back as the cache says it was, and remove the Go
# plugin's files: no drain needed for the upgrade.
use_first_pf
vfa=$(vf_address "$pf" 2); deva=$(vf_netdev "$vfa")
vfb=$(vf_address "$pf" 5)
ip link set "$deva" down
before_a=$(link_summary "$deva"); pf_a=$(vf_line "$pfdev" 2)
mac_a=$(cat "/sys/class/net/$deva/address"); mtu_a=$(cat "/sys/class/net/$deva/mtu")
pf_b=$(vf_line "$pfdev" 5)
echo "$pf_a" | grep -q 'mac 00:00:00:00:00:00 vlan 0 .* spoofchk on trust off state auto' ||
    fail "a fresh VF's PF view is not the one this scenario writes into the cache: $pf_a"
state=/var/lib/cni/sriov
mkdir -p "$state/pci"

# go_cache CONTAINER IFNAME VF INDEX HOSTIFNAME EFFECTIVEMAC MTU SETTINGS:
# the Go plugin's cache of one attachment. SETTINGS are the config's
# settings as the cache carries them (keys after "VFID", before "cniVersion"
# and after "type", in Go's order).
go_cache() {
    printf '{"MAC":"%s","MTU":%s,"Master":"%s","OrigVfState":{"AdminMAC":"00:00:00:00:00:00","EffectiveMAC":"%s","HostIFName":"%s","LinkState":0,"MTU":%s,"MaxTxRate":0,"MinTxRate":0,"SpoofChk":true,"Trust":false,"Vlan":0,"VlanProto":33024,"VlanQoS":0},"VFID":%s,"cniVersion":"1.0.0","deviceID":"%s","ipam":{"type":"host-local"},"max_tx_rate":null,"min_tx_rate":null,"name":"lab","runtimeConfig":{},"spoofchk":"off","type":"sriov","vlan":%s,"vlanProto":"802.1q","vlanQoS":0}' \
        "$9" "$7" "$pfdev" "$6" "$5" "$7" "$4" "$3" "$8" >"$state/$1-$2"
    printf '/var/run/netns/%s' "$1" >"$state/pci/$3"
}

# What the Go plugin's ADD does to VF $1 (index $2, netdev $3) for pod $4:
# PF side, then the netdev into the pod as net1 with the pod's MAC, up,
# with an address from host-local.
go_add() {
    ip link set "$pfdev" vf "$2" vlan 100 mac 60:00:00:00:00:e1 spoofchk off
    # igbvf takes the PF-assigned MAC when it is closed.
    ip link set "$3" up; ip link set "$3" down
    ip netns add "$4"
    ip link set "$3" netns "$4" name net1
    ip -n "$4" link set net1 up
    lease=$(netconf "$1" '' 10.14.0.0/24 | CNI_COMMAND=ADD CNI_CONTAINERID="$4" \
        CNI_NETNS="/var/run/netns/$4" CNI_IFNAME=net1 CNI_PATH=/usr/lib/cni /usr/lib/cni/host-local) ||
        fail "host-local ADD: $lease"
    address=$(echo "$lease" | grep -o '"address": *"[^"]*"' | cut -d'"' -f4)
    ip -n "$4" addr add "$address" dev net1
}

same_a() {
    [ "$(link_summary "$deva" 2>&1)" = "$before_a" ] || fail "$1: netdev $(link_summary "$deva" 2>&1), was $before_a"
    [ "$(vf_line "$pfdev" 2)" = "$pf_a" ] || fail "$1: PF side $(vf_line "$pfdev" 2), was $pf_a"
    for left in "$state"/*-net1 "$state/pci/$vfa" "$state/$vfa.json"; do
        [ ! -e "$left" ] || fail "$1: $left is left"
    done
    ls /run/ipam/lab 2>/dev/null | grep -q '^10\.14\.' && fail "$1: the host-local lease is left"
    return 0
}

echo "== DEL of a Go attachment, as Multus sends it (deviceID in the config)"
go_add "$vfa" 2 "$deva" go1
go_cache go1 net1 "$vfa" 2 "$deva" "$mac_a" "$mtu_a" 100 60:00:00:00:00:e1
vf_line "$pfdev" 2 | grep -q 'mac 60:00:00:00:00:e1 vlan 100 .* spoofchk off' || fail "go_add: $(vf_line "$pfdev" 2)"
# A DEL of another interface of the pod leaves the attachment alone.
out=$(netconf "$vfa" '' 10.14.0.0/24 | cni DEL go1 go1 net2) || fail "DEL of net2: $out"
[ -e "$state/go1-net1" ] || fail "DEL of net2 took net1's Go cache"
ip -n go1 link show net1 >/dev/null || fail "DEL of net2 took net1"
out=$(netconf "$vfa" '' 10.14.0.0/24 | cni DEL go1 go1 net1) || fail "DEL: $out"
ip -n go1 link show net1 >/dev/null 2>&1 && fail "the VF is still in the pod"
same_a "DEL with deviceID"
out=$(netconf "$vfa" '' 10.14.0.0/24 | cni DEL go1 go1 net1) || fail "a second DEL failed: $out"
same_a "a second DEL"
ip netns del go1

echo "== DEL without a deviceID, the pod's namespace already gone"
go_add "$vfa" 2 "$deva" go1
go_cache go1 net1 "$vfa" 2 "$deva" "$mac_a" "$mtu_a" 100 60:00:00:00:00:e1
ip netns del go1
sleep 0.3
conf=$(netconf "$vfa" '' 10.14.0.0/24 | sed "s/\"deviceID\":\"$vfa\",//")
out=$(echo "$conf" | cni DEL go1 go1 net1) || fail "DEL: $out"
same_a "DEL without deviceID after the netns went"
[ "$(vf_line "$pfdev" 5)" = "$pf_b" ] || fail "another VF changed: $(vf_line "$pfdev" 5)"

echo "== a stale Go cache of an older sandbox naming a VF a newer one holds"
# The Go plugin gives a VF whose sandbox is gone to the next pod; the older
# pod's cache stays if its DEL never ran.
go_add "$vfa" 2 "$deva" new1
go_cache old1 net1 "$vfa" 2 "$deva" "$mac_a" "$mtu_a" 100 60:00:00:00:00:e1
go_cache new1 net1 "$vfa" 2 "$deva" "$mac_a" "$mtu_a" 100 60:00:00:00:00:e1
ip netns add old1
out=$(netconf "$vfa" '' 10.14.0.0/24 | cni DEL old1 old1 net1) || fail "DEL of the stale attachment: $out"
ip -n new1 link show net1 >/dev/null || fail "DEL of the stale attachment took the newer pod's VF"
vf_line "$pfdev" 2 | grep -q 'mac 60:00:00:00:00:e1 vlan 100 .* spoofchk off' ||
    fail "DEL of the stale attachment changed the newer pod's PF side: $(vf_line "$pfdev" 2)"
[ ! -e "$state/old1-net1" ] || fail "the stale cache is left"
[ -e "$state/new1-net1" ] && [ -e "$state/pci/$vfa" ] || fail "the newer pod's Go files went"
out=$(netconf "$vfa" '' 10.14.0.0/24 | cni DEL new1 new1 net1) || fail "DEL of the newer pod: $out"
same_a "the newer pod's DEL"
ip netns del new1
echo "== the same, the newer pod's DEL first: the stale cache does not block it"
go_add "$vfa" 2 "$deva" new1
go_cache old1 net1 "$vfa" 2 "$deva" "$mac_a" "$mtu_a" 100 60:00:00:00:00:e1
go_cache new1 net1 "$vfa" 2 "$deva" "$mac_a" "$mtu_a" 100 60:00:00:00:00:e1
out=$(netconf "$vfa" '' 10.14.0.0/24 | cni DEL new1 new1 net1) || fail "DEL of the newer pod: $out"
ip -n new1 link show net1 >/dev/null 2>&1 && fail "the stale cache kept the newer pod's VF in its pod"
[ "$(vf_line "$pfdev" 2)" = "$pf_a" ] || fail "newer pod first: PF side $(vf_line "$pfdev" 2), was $pf_a"
out=$(netconf "$vfa" '' 10.14.0.0/24 | cni DEL old1 old1 net1) || fail "DEL of the stale attachment: $out"
same_a "the stale attachment's DEL after the newer pod's"
ip netns del old1; ip netns del new1

echo "== a Go cache naming the PF: refused, the lease still released"
pf_before=$(link_summary "$pfdev")
go_cache pfc net1 "$pf" 0 "$pfdev" "$mac_a" 1500 100 ""
ip netns add pfc
conf=$(netconf "$vfa" '' 10.14.0.0/24 | sed "s/\"deviceID\":\"$vfa\",//")
out=$(echo "$conf" | cni DEL pfc pfc net1) || fail "DEL: $out"
[ "$(link_summary "$pfdev")" = "$pf_before" ] || fail "the PF changed: $(link_summary "$pfdev")"
rm -f "$state/pfc-net1" "$state/pci/$pf"
ip netns del pfc

echo "== a Go attachment of a VF on vfio-pci (DPDK): only the PF side"
bind_vfio "$vfb"
ip link set "$pfdev" vf 5 vlan 200 spoofchk off
go_cache dpdk1 net1 "$vfb" 5 "" "" 0 200 ""
ip netns add dpdk1
out=$(netconf "$vfb" '' 10.14.0.0/24 | cni DEL dpdk1 dpdk1 net1) || fail "DEL: $out"
[ "$(vf_line "$pfdev" 5)" = "$pf_b" ] || fail "PF side of the DPDK VF: $(vf_line "$pfdev" 5), was $pf_b"
for left in "$state/dpdk1-net1" "$state/pci/$vfb" "$state/$vfb.json"; do
    [ ! -e "$left" ] || fail "DPDK: $left is left"
done
ip netns del dpdk1
