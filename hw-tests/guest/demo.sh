# The README's main job, run in the lab with `run.sh --demo`: a node with an
# SR-IOV NIC, the device plugin advertising its VFs to a (fake) kubelet, two
# pods that each get a VF through Allocate and the sriov CNI, and a ping
# from one to the other through the NIC. Every line goes to the console
# prefixed with "demo: ".
. /lab/lib.sh

step() { printf '\n== %s\n' "$*"; }
show() { echo "\$ $*"; "$@"; }

main() {
    step "A node with an Intel 82576 SR-IOV NIC (emulated by QEMU; the real igb and igbvf drivers)"
    use_first_pf
    echo "PF $pfdev ($pf) with $(cat "/sys/bus/pci/devices/$pf/sriov_numvfs") VFs"

    step "The device plugin advertises them to kubelet as intel.com/sriov_netdevice"
    config="{\"resourceList\":[{\"resourceName\":\"sriov_netdevice\",\"selectors\":{\"pfNames\":[\"$pfdev\"],\"drivers\":[\"igbvf\"]}}]}"
    echo "config: $config"
    start_device_plugin "$config"
    wait_until "grep -q '^list intel.com/sriov_netdevice ' /tmp/kubelet.out"
    echo "kubelet saw:"
    sed 's/^/  /' /tmp/kubelet.out
    # Kubelet would pick any two free devices: take the first two listed.
    set -- $(last_list intel.com/sriov_netdevice)
    socket=$plugins/intel.com_sriov_netdevice.sock

    for pod in pod-a pod-b; do
        vf=${1%%=*}
        shift
        step "$pod asks for intel.com/sriov_netdevice: 1; kubelet calls Allocate"
        show fake-kubelet allocate "$socket" "$vf"
        step "The runtime, through Multus, runs the sriov CNI for $pod with deviceID $vf"
        ip netns add "$pod"
        conf="{\"cniVersion\":\"1.0.0\",\"name\":\"sriov-net\",\"type\":\"sriov\",\"deviceID\":\"$vf\",\"vlan\":100,\"spoofchk\":\"on\",\"ipam\":{\"type\":\"host-local\",\"subnet\":\"10.56.217.0/24\",\"dataDir\":\"/run/ipam-demo\"}}"
        echo "netconf: $conf"
        result=$(echo "$conf" | cni ADD "$pod" "$pod" net1) || fail "ADD $pod: $result"
        echo "result: $result"
        show ip -n "$pod" -br addr show net1
        eval "vf_${pod#pod-}=$vf"
    done

    step "The PF's side: both VFs on VLAN 100, spoof checking on"
    ip link show "$pfdev" | grep -E "vf [0-9]+ " | sed 's/^ *//'

    step "pod-a pings pod-b through the NIC's own switch"
    pod_link_up pod-a net1
    pod_link_up pod-b net1
    show nsenter --net=/var/run/netns/pod-a ping -c 3 -W 3 10.56.217.3

    step "Both pods deleted: DEL moves each VF back to the host and takes its VLAN off"
    for pod in pod-a pod-b; do
        eval "vf=\$vf_${pod#pod-}"
        echo "{\"cniVersion\":\"1.0.0\",\"name\":\"sriov-net\",\"type\":\"sriov\",\"deviceID\":\"$vf\",\"vlan\":100,\"spoofchk\":\"on\",\"ipam\":{\"type\":\"host-local\",\"subnet\":\"10.56.217.0/24\",\"dataDir\":\"/run/ipam-demo\"}}" |
            cni DEL "$pod" "$pod" net1
        ip netns del "$pod"
        echo "$vf is back as $(vf_netdev "$vf")"
    done
    # The MACs now shown are the VFs' own: igbvf reports its address to the
    # PF whenever its link comes up.
    ip link show "$pfdev" | grep -E "vf [0-9]+ " | sed 's/^ *//'
    echo done
}

main 2>&1 | sed 's/^/demo: /'
