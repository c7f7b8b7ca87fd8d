# Scenario 1 (discovery): `sriov-device-plugin discover` lists every VF of
# every PF with the right PF, index, ids, driver, netdev and IOMMU group.
for pf in $(pfs); do set_num_vfs "$pf" 7; done
sriov-device-plugin discover >/tmp/discover.out
cat /tmp/discover.out

[ "$(pfs | wc -l)" -eq 2 ] || fail "expected 2 PFs"
for pf in $(pfs); do
    grep -q "^PF $pf 8086:10c9 driver=igb netdev=$(ls /sys/bus/pci/devices/$pf/net) vfs=7/7 " /tmp/discover.out ||
        fail "no line for PF $pf"
    section=$(awk -v pf="$pf" '/^PF /{show = ($2 == pf)} show && /^  VF /' /tmp/discover.out)
    for index in 0 1 2 3 4 5 6; do
        vf=$(basename "$(readlink "/sys/bus/pci/devices/$pf/virtfn$index")")
        netdev=$(ls "/sys/bus/pci/devices/$vf/net")
        group=$(basename "$(readlink "/sys/bus/pci/devices/$vf/iommu_group")")
        expected=$(printf '  VF %-3s %s 8086:10ca driver=igbvf netdev=%s iommu_group=%s' "$index" "$vf" "$netdev" "$group")
        echo "$section" | grep -qxF "$expected" || fail "missing: $expected"
    done
done
