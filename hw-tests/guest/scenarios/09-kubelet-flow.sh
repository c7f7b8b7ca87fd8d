# Scenario 2 (kubelet flow) and the device-plugin side of scenario 6: the
# daemon registers its pools with the fake kubelet, which dials them back;
# ListAndWatch lists the VFs; Allocate returns upstream's env vars, the
# /dev/vfio device specs of a VF on vfio-pci, and writes the device-info
# file; an unknown device is refused by name.
use_first_pf
vf0=$(vf_address "$pf" 0)
dpdk=$(vf_address "$pf" 6)
bind_vfio "$dpdk"
start_device_plugin "{\"resourceList\":[
    {\"resourceName\":\"igb\",\"selectors\":{\"pfNames\":[\"$pfdev\"],\"drivers\":[\"$(pci_driver "$vf0")\"]}},
    {\"resourceName\":\"igb_dpdk\",\"selectors\":{\"pfNames\":[\"$pfdev\"],\"drivers\":[\"vfio-pci\"]}}]}"
wait_until "grep -q '^registered intel.com/igb intel.com_igb.sock$' /tmp/kubelet.out"
wait_until "grep -q '^registered intel.com/igb_dpdk intel.com_igb_dpdk.sock$' /tmp/kubelet.out"
wait_list intel.com/igb_dpdk "$dpdk=Healthy"
wait_list intel.com/igb "$(vfs_as "$pf" Healthy | tr ' ' '\n' | grep -v "^$dpdk=" | tr '\n' ' ' | sed 's/ $//')"
[ "$(stat -c %a "$plugins/intel.com_igb.sock")" = 600 ] || fail "socket mode $(stat -c %a "$plugins/intel.com_igb.sock")"

fake-kubelet allocate "$plugins/intel.com_igb.sock" "$vf0" >/tmp/allocate.out || fail "Allocate: $(cat /tmp/allocate.out)"
cat /tmp/allocate.out
grep -qxF "env PCIDEVICE_INTEL_COM_IGB=$vf0" /tmp/allocate.out || fail "no PCIDEVICE_INTEL_COM_IGB"
grep -qF "env PCIDEVICE_INTEL_COM_IGB_INFO={\"$vf0\":{\"generic\":{\"deviceID\":\"$vf0\"}" /tmp/allocate.out || fail "no _INFO"
! grep -q '^device ' /tmp/allocate.out || fail "a netdevice VF needs no device node"
info=/var/run/k8s.cni.cncf.io/devinfo/dp/intel.com-igb-$vf0-device.json
cat "$info"
grep -qF "\"pci-address\":\"$vf0\"" "$info" || fail "device info has no pci-address"
grep -qF "\"pf-pci-address\":\"$pf\"" "$info" || fail "device info has no pf-pci-address"

fake-kubelet allocate "$plugins/intel.com_igb_dpdk.sock" "$dpdk" >/tmp/allocate.out || fail "Allocate: $(cat /tmp/allocate.out)"
cat /tmp/allocate.out
grep -qxF "env PCIDEVICE_INTEL_COM_IGB_DPDK=$dpdk" /tmp/allocate.out || fail "no PCIDEVICE_INTEL_COM_IGB_DPDK"
grep -qxF "device /dev/vfio/vfio /dev/vfio/vfio rw" /tmp/allocate.out || fail "no /dev/vfio/vfio"
grep -qxF "device /dev/vfio/$group /dev/vfio/$group rw" /tmp/allocate.out || fail "no /dev/vfio/$group"

if fake-kubelet allocate "$plugins/intel.com_igb.sock" 0000:99:00.0 2>/tmp/allocate.err; then
    fail "an unknown device was allocated"
fi
grep -qF 0000:99:00.0 /tmp/allocate.err || fail "the refusal does not name the device: $(cat /tmp/allocate.err)"
