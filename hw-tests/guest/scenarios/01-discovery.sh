# Scenario 1 (discovery): `sriov-device-plugin discover` lists every VF of
# every PF with the right PF, index, ids, driver, netdev, IOMMU group and
# health, as sysfs has them.
# lab: emulated NIC only
for pf in $(pfs); do
    set_num_vfs "$pf" 7
    link_up "$(vf_netdev "$pf")"
done
echo '{"resourceList":[{"resourceName":"igbvf","selectors":{"vendors":["8086"],"drivers":["igbvf"]}}]}' >/tmp/dp.json
sriov-device-plugin discover --config-file /tmp/dp.json >/tmp/discover.out
cat /tmp/discover.out

[ "$(pfs | wc -l)" -eq 2 ] || fail "expected 2 PFs"
[ "$(grep -c '^intel.com/igbvf ' /tmp/discover.out)" -eq 14 ] || fail "expected 14 VFs"
for pf in $(pfs); do
    pfdev=$(vf_netdev "$pf")
    for index in 0 1 2 3 4 5 6; do
        vf=$(vf_address "$pf" "$index")
        group=$(basename "$(readlink "/sys/bus/pci/devices/$vf/iommu_group")")
        expected="intel.com/igbvf $vf $pfdev $index 8086:10ca igbvf $(vf_netdev "$vf") - $group Healthy"
        tr -s ' ' </tmp/discover.out | grep -qxF "$expected" || fail "missing: $expected"
    done
done
