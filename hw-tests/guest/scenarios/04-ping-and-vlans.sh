# Scenario 4: two pods on VFs of one PF ping each other on the same VLAN
# through the NIC's switch, and cannot on different VLANs.
use_first_pf
a=$(vf_address "$pf" 2)
b=$(vf_address "$pf" 3)
ip netns add pod-a
ip netns add pod-b

attach() { # attach CONTAINER POD VF VLAN
    out=$(netconf "$3" ",\"vlan\":$4" 10.20.0.0/24 | cni ADD "$1" "$2" net1) || fail "ADD $1: $out"
}
detach() {
    out=$(netconf "$3" ",\"vlan\":$4" 10.20.0.0/24 | cni DEL "$1" "$2" net1) || fail "DEL $1: $out"
}
ping_b() {
    pod_link_up pod-a net1
    pod_link_up pod-b net1
    nsenter --net=/var/run/netns/pod-a ping -c 3 -W 3 10.20.0.3
}
diagnose() {
    ip -n pod-a addr; ip -n pod-b addr; ip link show "$pfdev"; ip -n pod-a neigh
}

attach ca pod-a "$a" 200
attach cb pod-b "$b" 200
ip -n pod-b -o addr show net1 | grep -qF 10.20.0.3/24 || fail "pod-b has no 10.20.0.3"
ping_b || { diagnose; fail "no ping between VFs on the same VLAN"; }

detach cb pod-b "$b" 200
attach cb pod-b "$b" 201
if ping_b; then fail "ping crossed from VLAN 200 to VLAN 201"; fi

detach ca pod-a "$a" 200
detach cb pod-b "$b" 201
ip netns del pod-a
ip netns del pod-b
