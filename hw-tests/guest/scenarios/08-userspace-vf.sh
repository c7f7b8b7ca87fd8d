# Scenario 6 (CNI part): a VF bound to vfio-pci has /dev/vfio/<group>, is
# listed by discover with no netdev, and the CNI configures its PF side
# without moving anything; DEL restores the PF side.
use_first_pf
vf=$(vf_address "$pf" 6)
bind_vfio "$vf"

echo '{"resourceList":[{"resourceName":"dpdk","selectors":{"drivers":["vfio-pci"]}}]}' >/tmp/dpdk.json
sriov-device-plugin discover --config-file /tmp/dpdk.json | tr -s ' ' |
    grep -qxF "intel.com/dpdk $vf $pfdev 6 $(pci_ids "$vf") vfio-pci - - $group Healthy" || fail "discover: $(sriov-device-plugin discover --config-file /tmp/dpdk.json)"

before_pf=$(vf_line "$pfdev" 6)
ip netns add podu
config=$(netconf "$vf" ',"vlan":700,"spoofchk":"off"' 10.90.0.0/24 | sed 's/"1.0.0"/"1.1.0"/')
result=$(echo "$config" | cni ADD cu podu net1) || fail "ADD: $result"
echo "$result" | grep -qF "\"pciID\":\"$vf\"" || fail "no pciID in: $result"
echo "$result" | grep -qF '"address":"10.90.0.2/24"' || fail "no address in: $result"
vf_line "$pfdev" 6 | grep -qF "vlan 700 qos 0 proto 802.1q spoofchk off" || fail "PF side: $(vf_line "$pfdev" 6)"
[ "$(ip -n podu -o link | wc -l)" -eq 1 ] || fail "something moved into the pod: $(ip -n podu -o link)"
echo "$config" | cni DEL cu podu net1 || fail "DEL failed"
[ "$(vf_line "$pfdev" 6)" = "$before_pf" ] || fail "PF side not restored: $(vf_line "$pfdev" 6)"
ip netns del podu
