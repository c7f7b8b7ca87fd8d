# Benchmarks, run instead of the scenarios with `run.sh --bench`: ADD and DEL
# wall time of the sriov plugin on a real VF, with and without IPAM.
. /lab/lib.sh
use_first_pf
vf=$(vf_address "$pf" 0)
ip netns add bench
settings=',"vlan":100,"vlanQoS":3,"mac":"02:00:00:00:0b:0b","spoofchk":"off","trust":"on","max_tx_rate":500'
netconf "$vf" "$settings" 10.60.0.0/24 >/tmp/with-ipam.json
printf '{"cniVersion":"1.0.0","name":"lab","type":"sriov","deviceID":"%s"%s}' "$vf" "$settings" >/tmp/no-ipam.json
export CNI_PATH=/usr/lib/cni
rounds=${1:-20}
echo "bench: sriov, vlan+qos, mac, spoofchk, trust, max_tx_rate, host-local IPAM, $rounds rounds"
cni-bench /bin/sriov /tmp/with-ipam.json /var/run/netns/bench "$rounds" | sed 's/^/bench:   /'
echo "bench: sriov, same settings, no IPAM, $rounds rounds"
cni-bench /bin/sriov /tmp/no-ipam.json /var/run/netns/bench "$rounds" | sed 's/^/bench:   /'
echo "bench: host-local alone (ADD/DEL), $rounds rounds"
cni-bench /usr/lib/cni/host-local /tmp/with-ipam.json /var/run/netns/bench "$rounds" | sed 's/^/bench:   /'
# Process start and exit alone: VERSION, 50 calls, timed with /proc/uptime.
per_call() {
    start=$(cut -d' ' -f1 /proc/uptime)
    for _ in $(seq 50); do echo '{"cniVersion":"1.0.0"}' | CNI_COMMAND=VERSION "$1" >/dev/null; done
    end=$(cut -d' ' -f1 /proc/uptime)
    awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f ms per call", (e - s) * 1000 / 50 }'
}
echo "bench: VERSION (process start and exit): sriov $(per_call /bin/sriov), host-local $(per_call /usr/lib/cni/host-local)"
