# DRA on real igb VFs: the daemon publishes the pool as ResourceSlices on
# the fake API server (the tests' own, as fake-apiserver), registers the
# driver with the fake kubelet's plugin watcher, which streams its health;
# a claim is prepared (CDI spec with upstream's variables and /dev/vfio,
# device-info files), survives a daemon restart, and is unprepared; the
# PF's link down reaches the health stream and the slices, and a claim on
# the down PF is refused by name.
use_first_pf
vf0=$(vf_address "$pf" 0)
vf1=$(vf_address "$pf" 1)
dpdk=$(vf_address "$pf" 6)
bind_vfio "$dpdk"
name() { echo "$1" | tr ':.' '--'; }
ip link set lo up
mkdir -p /tmp/claims/default /run/kubelet/plugins_registry /run/kubelet/plugins
fake-apiserver 127.0.0.1:6443 /tmp/claims >/tmp/api.out 2>&1 &
api_pid=$!
cat >/tmp/kubeconfig <<KUBECONFIG
apiVersion: v1
kind: Config
clusters: [{name: lab, cluster: {server: "http://127.0.0.1:6443"}}]
users: [{name: lab, user: {}}]
contexts: [{name: lab, context: {cluster: lab, user: lab}}]
current-context: lab
KUBECONFIG
fake-kubelet plugins /run/kubelet/plugins_registry / >/tmp/kubelet.out 2>&1 &
kubelet_pid=$!
echo "{\"resourceList\":[{\"resourceName\":\"igb\",\"api\":\"dra\",\"selectors\":{\"pfNames\":[\"$pfdev\"]}}]}" >/tmp/dp.json
start_dra() {
    sriov-device-plugin --config-file /tmp/dp.json --device-plugin-dir "$plugins" \
        --plugins-registry-dir /run/kubelet/plugins_registry --dra-plugins-dir /run/kubelet/plugins \
        --cdi-dir /run/cdi --node-name worker-1 --kubeconfig /tmp/kubeconfig 2>>/tmp/dp.log &
    dp_pid=$!
}
mkdir -p "$plugins"
start_dra
trap 'kill $dp_pid $kubelet_pid $api_pid 2>/dev/null; wait; echo "daemon log:"; cat /tmp/dp.log; cat /tmp/api.out /tmp/kubelet.out' EXIT

# Every VF published, healthy, and streamed healthy to kubelet.
all() { for vf in /sys/bus/pci/devices/$pf/virtfn*; do echo "$1$(name "$(basename "$(readlink "$vf")")")=$2"; done | sort | tr '\n' ' ' | sed 's/ $//'; }
wait_until "grep -q '^slices [0-9]* $(all '' true)\$' /tmp/api.out"
socket=/run/kubelet/plugins/sriovnetwork.k8snetworkplumbingwg.io/dra.sock
wait_until "grep -qxF 'registered sriovnetwork.k8snetworkplumbingwg.io $socket' /tmp/kubelet.out"
wait_until "grep -qxF 'health $(all worker-1/ HEALTHY)' /tmp/kubelet.out"
[ "$(stat -c %a "$socket")" = 600 ] || fail "socket mode $(stat -c %a "$socket")"
# Attributes the real tree gives: the PF's device id and the PCIe root.
root=$(readlink -f "/sys/bus/pci/devices/$pf" | tr '/' '\n' | grep '^pci' | head -1)
pf_id=$(sed 's/^0x//' "/sys/bus/pci/devices/$pf/device")
grep "^attributes $(name "$vf0") " /tmp/api.out | tail -1 | tr ' ' '\n' >/tmp/attributes
grep -qxF "resource.kubernetes.io/pcieRoot=$root" /tmp/attributes || fail "no pcieRoot $root: $(cat /tmp/attributes)"
grep -qxF "sriovnetwork.k8snetworkplumbingwg.io/pfDeviceID=$pf_id" /tmp/attributes || fail "no pfDeviceID $pf_id"
grep -qxF "k8s.cni.cncf.io/resourceName=intel.com/igb" /tmp/attributes || fail "no resourceName"

# A claim for a netdev VF and the vfio one.
claim() { # NAME UID DEVICE...
    n=$1 uid=$2
    shift 2
    results=""
    for d in "$@"; do results="$results{\"request\":\"vf\",\"driver\":\"sriovnetwork.k8snetworkplumbingwg.io\",\"pool\":\"worker-1\",\"device\":\"$d\"},"; done
    echo "{\"apiVersion\":\"resource.k8s.io/v1\",\"kind\":\"ResourceClaim\",\"metadata\":{\"namespace\":\"default\",\"name\":\"$n\",\"uid\":\"$uid\"},\"spec\":{},\"status\":{\"allocation\":{\"devices\":{\"results\":[${results%,}]}}}}" >"/tmp/claims/default/$n.json"
}
uid=11111111-0000-4000-8000-000000000001
claim one "$uid" "$(name "$vf0")" "$(name "$dpdk")"
fake-kubelet prepare "$socket" default one "$uid" >/tmp/prepare.out || fail "prepare: $(cat /tmp/prepare.out)"
cat /tmp/prepare.out
kind=sriovnetwork.k8snetworkplumbingwg.io/vf
grep -qxF "device worker-1 $(name "$vf0") vf $kind=$uid-$(name "$vf0")" /tmp/prepare.out || fail "no $vf0 in the answer"
grep -qxF "device worker-1 $(name "$dpdk") vf $kind=$uid-$(name "$dpdk")" /tmp/prepare.out || fail "no $dpdk in the answer"
spec=/run/cdi/sriov-dra-$uid.json
cat "$spec"; echo
grep -qF "\"PCIDEVICE_INTEL_COM_IGB=$vf0,$dpdk\"" "$spec" || fail "no PCIDEVICE_INTEL_COM_IGB in the CDI spec"
grep -qF "\"path\":\"/dev/vfio/$group\"" "$spec" || fail "no /dev/vfio/$group in the CDI spec"
info=/var/run/k8s.cni.cncf.io/devinfo/dp/intel.com-igb-$vf0-device.json
grep -qF "\"pci-address\":\"$vf0\"" "$info" || fail "no device info for $vf0"

# A restart: the claim is still prepared (same answer), then unprepared.
kill $dp_pid; wait $dp_pid
[ ! -e "$socket" ] || fail "the socket outlived the daemon"
start_dra
wait_until "[ -S $socket ]"
fake-kubelet prepare "$socket" default one "$uid" >/tmp/again.out || fail "prepare again: $(cat /tmp/again.out)"
cmp /tmp/prepare.out /tmp/again.out || fail "prepared differently after the restart"
fake-kubelet unprepare "$socket" default one "$uid" || fail "unprepare"
[ ! -e "$spec" ] || fail "the CDI spec outlived unprepare"
[ ! -e "$info" ] || fail "the device info outlived unprepare"
fake-kubelet unprepare "$socket" default one "$uid" || fail "a second unprepare"

# The PF's link down: unhealthy in the stream and the slices; a claim for
# one of its VFs is refused, naming it.
ip link set "$pfdev" down
wait_until "grep -qxF 'health $(all worker-1/ UNHEALTHY)' /tmp/kubelet.out"
wait_until "grep -q '^slices [0-9]* $(all '' false)\$' /tmp/api.out"
uid=22222222-0000-4000-8000-000000000002
claim two "$uid" "$(name "$vf1")"
if fake-kubelet prepare "$socket" default two "$uid" >/tmp/refused.out; then
    fail "a VF of a down PF was prepared"
fi
grep -q "^error device $(name "$vf1") ($vf1) is unhealthy" /tmp/refused.out || fail "the refusal: $(cat /tmp/refused.out)"
link_up "$pfdev"
wait_until "grep -q '^slices [0-9]* $(all '' true)\$' /tmp/api.out"
