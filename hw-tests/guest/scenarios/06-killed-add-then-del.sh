# Scenario 5, continued: the CNI killed with SIGKILL in the middle of ADD,
# at several moments, then DEL: the VF comes back exactly, whatever step
# the kill interrupted.
use_first_pf
vf=$(vf_address "$pf" 5)
vfdev=$(vf_netdev "$vf")
before_pf=$(vf_line "$pfdev" 5)
before_link=$(link_summary "$vfdev")
config=$(netconf "$vf" ',"vlan":500,"mac":"02:00:00:00:06:06","spoofchk":"off","mtu":1400' 10.70.0.0/24)
for delay in 0 0.02 0.04 0.06 0.08 0.1 0.15; do
    ip netns add podk
    echo "$config" >/tmp/k.json
    killed_add /tmp/k.json ck podk "$delay"
    out=$(echo "$config" | cni DEL ck podk net1) || fail "DEL after a kill at ${delay}s: $out"
    [ "$(vf_line "$pfdev" 5)" = "$before_pf" ] || fail "kill at ${delay}s: PF side $(vf_line "$pfdev" 5), was $before_pf"
    [ "$(link_summary "$vfdev" 2>&1)" = "$before_link" ] || fail "kill at ${delay}s: netdev $(link_summary "$vfdev" 2>&1), was $before_link"
    ip -n podk link show net1 >/dev/null 2>&1 && fail "kill at ${delay}s: the VF stayed in the pod"
    ip netns del podk
done
[ -z "$(ls /var/lib/cni/sriov/*.json 2>/dev/null)" ] || fail "a state file is left"
[ -z "$(ls /run/ipam/lab 2>/dev/null | grep '^10\.')" ] || fail "an IPAM lease is left: $(ls /run/ipam/lab)"
