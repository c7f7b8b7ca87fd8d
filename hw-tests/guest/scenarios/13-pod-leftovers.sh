# Scenario 13: what a pod can leave on its VF, and DELs that must not lie.
# Each case was a defect: DEL left a pod's macvlan bound to the VF (it then
# carried the old pod's traffic onto the next pod's VLAN), let a pod's
# altnames follow the VF home, reported success with the VF still in the
# pod, tore down another attachment's VF, or left a failed ADD's record.
use_first_pf
vfa=$(vf_address "$pf" 2); deva=$(vf_netdev "$vfa")
vfb=$(vf_address "$pf" 4); devb=$(vf_netdev "$vfb")
before_a=$(link_summary "$deva"); pf_a=$(vf_line "$pfdev" 2)
before_b=$(link_summary "$devb"); pf_b=$(vf_line "$pfdev" 4)
same_a() {
    [ "$(link_summary "$deva" 2>&1)" = "$before_a" ] || fail "$1: netdev $(link_summary "$deva" 2>&1), was $before_a"
    [ "$(vf_line "$pfdev" 2)" = "$pf_a" ] || fail "$1: PF side $(vf_line "$pfdev" 2), was $pf_a"
    [ ! -e "/var/lib/cni/sriov/$vfa.json" ] || fail "$1: the record is left"
}
conf_a=$(netconf "$vfa" ',"vlan":100' 10.13.0.0/24)

echo "== upper devices, promisc and allmulti set by the pod"
# igb refuses every VLAN filter a VF asks for ("Vlan id N is not added"),
# so VLAN sub-interfaces are covered by the crate tests on veth instead.
conf_u=$(netconf "$vfa" '' 10.13.0.0/24)
ip netns add a2
out=$(echo "$conf_u" | cni ADD a2 a2 net1) || fail "ADD: $out"
ip -n a2 link add link net1 name mv0 type macvlan
ip -n a2 link add link mv0 name mv1 type macvlan
ip -n a2 addr add 10.13.9.9/24 dev mv0
ip -n a2 link set mv0 up
ip -n a2 link set net1 promisc on allmulticast on
checked=$(echo "$conf_u" | sed "s|}\$|,\"prevResult\":$out}|")
if msg=$(echo "$checked" | cni CHECK a2 a2 net1); then fail "CHECK missed the pod's additions"; fi
for want in "mv0 is stacked on net1" "mv1 is stacked on net1" "promiscuous"; do
    echo "$msg" | grep -qF "$want" || fail "CHECK said: $msg"
done
out=$(echo "$conf_u" | cni DEL a2 a2 net1) || fail "DEL: $out"
[ "$(ip -n a2 -o link show | grep -vc ': lo:')" = 0 ] || fail "the pod kept: $(ip -n a2 -o link show)"
ip -d link show | grep -q macvlan && fail "a macvlan reached the host: $(ip -d link show)"
same_a "upper devices"

echo "== a bridge port"
out=$(echo "$conf_a" | cni ADD a2 a2 net1) || fail "ADD: $out"
ip -n a2 link add br0 type bridge
ip -n a2 link set net1 master br0
out=$(echo "$conf_a" | cni DEL a2 a2 net1) || fail "DEL of a bridge port: $out"
same_a "bridge port"

echo "== altnames added in the pod"
out=$(echo "$conf_a" | cni ADD a2 a2 net1) || fail "ADD: $out"
ip -n a2 link property add dev net1 altname flannel.1
out=$(echo "$conf_a" | cni DEL a2 a2 net1) || fail "DEL: $out"
same_a "altname flannel.1"
ip link add flannel.1 link "$pfdev" type macvlan || fail "flannel.1 is still taken in the host"
ip link del flannel.1

echo "== an altname equal to a host name (the PF's)"
out=$(echo "$conf_a" | cni ADD a2 a2 net1) || fail "ADD: $out"
ip -n a2 link property add dev net1 altname "$pfdev"
out=$(echo "$conf_a" | cni DEL a2 a2 net1) || fail "DEL: $out"
ip -n a2 link show net1 >/dev/null 2>&1 && fail "DEL succeeded with the VF still in the pod"
same_a "altname $pfdev"
out=$(echo "$conf_a" | cni DEL a2 a2 net1) || fail "a second DEL failed: $out"

echo "== the pod's namespace deleted with an altname on the VF"
out=$(echo "$conf_a" | cni ADD a2 a2 net1) || fail "ADD: $out"
ip -n a2 link property add dev net1 altname flannel.1
ip netns del a2
sleep 0.3
out=$(echo "$conf_a" | cni DEL a2 a2 net1) || fail "DEL after the netns went: $out"
same_a "netns deleted with an altname"

echo "== the VF moved on to a third namespace"
ip netns add b1
ip netns add hide
out=$(echo "$conf_a" | cni ADD b1 b1 net1) || fail "ADD: $out"
ip -n b1 link set net1 netns hide
if out=$(echo "$conf_a" | cni DEL b1 b1 net1); then fail "DEL succeeded while the VF was in another namespace"; fi
echo "$out" | grep -qF "neither in the pod" || fail "DEL said: $out"
[ -e "/var/lib/cni/sriov/$vfa.json" ] || fail "the record went while the VF was away"
ls /run/ipam/lab | grep -q '^10\.13\.' || fail "the lease went while the VF was away"
ip netns del hide
sleep 0.3
out=$(echo "$conf_a" | cni DEL b1 b1 net1) || fail "DEL once the VF was back: $out"
same_a "VF moved to a third namespace"
ip netns del b1

echo "== DEL of another ifname of the same pod"
conf_b=$(netconf "$vfb" '' 10.13.0.0/24)
ip netns add d1
result=$(echo "$conf_b" | cni ADD cd d1 net1) || fail "ADD: $result"
out=$(echo "$conf_b" | cni DEL cd d1 net2) || fail "DEL of net2: $out"
ip -n d1 link show net1 >/dev/null || fail "DEL of net2 took net1 out of the pod"
[ -e "/var/lib/cni/sriov/$vfb.json" ] || fail "DEL of net2 removed net1's record"
checked=$(echo "$conf_b" | sed "s|}\$|,\"prevResult\":$result}|")
out=$(echo "$checked" | cni CHECK cd d1 net1) || fail "CHECK after DEL of net2: $out"
out=$(echo "$conf_b" | cni DEL cd d1 net1) || fail "DEL: $out"
[ "$(link_summary "$devb")" = "$before_b" ] || fail "netdev $(link_summary "$devb"), was $before_b"
[ "$(vf_line "$pfdev" 4)" = "$pf_b" ] || fail "PF side $(vf_line "$pfdev" 4), was $pf_b"

echo "== a failed ADD leaves no record"
bad=$(printf '{"cniVersion":"1.0.0","name":"lab","type":"sriov","deviceID":"%s","vlan":30,"ipam":{"type":"doesnotexist"}}' "$vfb")
if out=$(echo "$bad" | cni ADD f1 d1 net1); then fail "ADD with a missing IPAM plugin succeeded"; fi
echo "$out" | grep -q '"code":102' || fail "ADD said: $out"
[ ! -e "/var/lib/cni/sriov/$vfb.json" ] || fail "the failed ADD left its record"
out=$(echo "$conf_b" | cni ADD f2 d1 net1) || fail "the next ADD on the VF: $out"
out=$(echo "$conf_b" | cni DEL f2 d1 net1) || fail "DEL: $out"
[ "$(vf_line "$pfdev" 4)" = "$pf_b" ] || fail "PF side $(vf_line "$pfdev" 4), was $pf_b"
ip netns del d1

echo "== DEL without a record touches no device outside a pod"
ip link set "$deva" up
host_ns() {
    CNI_COMMAND=DEL CNI_CONTAINERID=x CNI_NETNS=/proc/1/ns/net CNI_IFNAME="$1" CNI_PATH=/usr/lib/cni sriov
}
pfconf=$(printf '{"cniVersion":"1.0.0","name":"lab","type":"sriov","deviceID":"%s"}' "$pf")
if out=$(echo "$pfconf" | host_ns "$pfdev"); then fail "DEL on the PF succeeded"; fi
echo "$out" | grep -q '"code":100' || fail "DEL on the PF said: $out"
ip -o link show "$pfdev" | grep -q ",UP" || fail "DEL took the PF down"
vfconf=$(printf '{"cniVersion":"1.0.0","name":"lab","type":"sriov","deviceID":"%s"}' "$vfa")
out=$(echo "$vfconf" | host_ns "$deva") || fail "DEL of a host VF: $out"
ip -o link show "$deva" | grep -q ",UP" || fail "DEL took a VF in the host down"
ip link set "$deva" down
nodev=$(printf '{"cniVersion":"1.0.0","name":"lab","type":"sriov","deviceID":"ffff:ff:1f.7"}')
echo "$nodev" | host_ns net1 >/dev/null || fail "DEL of an absent device failed"
[ ! -e /var/lib/cni/sriov/ffff:ff:1f.7.lock ] || fail "a lock file for an absent device"
# Opened and closed on the host, the VF now reports its MAC to the PF.
before_a=$(link_summary "$deva"); pf_a=$(vf_line "$pfdev" 2)

echo "== resetOnRelease"
ip netns add r1
conf_r=$(netconf "$vfa" ',"vlan":100,"mac":"02:00:00:00:13:13","resetOnRelease":true,"logLevel":"info","logFile":"/tmp/reset.log"' 10.13.0.0/24)
out=$(echo "$conf_r" | cni ADD r1 r1 net1) || fail "ADD: $out"
out=$(echo "$conf_r" | cni DEL r1 r1 net1) || fail "DEL with reset: $out"
took=$(grep -o "reset $vfa in [0-9.]* ms" /tmp/reset.log) || fail "no reset logged: $(cat /tmp/reset.log)"
# On the console for run.sh to print: what a reset costs on this NIC.
echo "lab: note: resetOnRelease: $took" >/dev/console
same_a "resetOnRelease"
out=$(echo "$conf_r" | cni ADD r2 r1 net1) || fail "ADD after a reset: $out"
out=$(echo "$conf_r" | cni DEL r2 r1 net1) || fail "DEL: $out"
same_a "second resetOnRelease"
ip netns del r1
[ -z "$(ls /run/ipam/lab 2>/dev/null | grep '^10\.13\.')" ] || fail "an IPAM lease is left: $(ls /run/ipam/lab)"
