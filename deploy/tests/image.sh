#!/usr/bin/env bash
# The image, for real: built by deploy/build-image.sh, loaded by podman and
# by containerd's ctr, then run by runc as kubelet would run the DaemonSet
# (deploy/tests/bundle.py makes each bundle from the manifest) on a fake
# node: a fake sysfs tree, and a fake kubelet playing the plugin watcher.
#   1. install-cni puts an executable sriov that answers VERSION into the
#      node's /opt/cni/bin;
#   2. `sriovdp discover`, the upstream name, prints the ConfigMap's pools;
#   3. the daemon registers those pools, and /readyz says ready.
# Run as root; takes a few seconds once the image is built.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$here/../..
work=$(mktemp -d)
node=$work/node
containerd_pid=
fail() {
    echo "image: FAIL: $*" >&2
    for log in "$work"/sriov-rs-*.log "$work"/kubelet.log "$work"/ctr.log "$work"/podman.log; do
        [ -s "$log" ] && { echo "--- $(basename "$log")" >&2; tail -n 40 "$log" >&2; }
    done
    exit 1
}
cleanup() {
    for id in "$work"/running.*; do
        [ -e "$id" ] && runc delete --force "${id##*.}" >/dev/null 2>&1
    done
    [ -n "$containerd_pid" ] && kill "$containerd_pid" 2>/dev/null && wait "$containerd_pid" 2>/dev/null
    jobs -p | xargs -r kill 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

archive=$("$repo/deploy/build-image.sh" "$work/out")
version=$(basename "$archive" .tar)
version=${version#sriov-rs-}
size=$(stat -c %s "$archive")
echo "image: sriov-rs:$version, archive $((size / 1024)) KiB"
((size < 15 * 1024 * 1024)) || fail "the archive is $size bytes, over 15 MB"

# Both loaders take the archive, each in a store of its own.
podman --root "$work/podman" --runroot "$work/podman-run" load -q -i "$archive" >"$work/podman.log" 2>&1 ||
    fail "podman load"
grep -q "sriov-rs:$version" "$work/podman.log" || fail "podman loaded no sriov-rs:$version"
containerd --root "$work/containerd" --state "$work/containerd-state" \
    --address "$work/containerd.sock" --config /dev/null >"$work/containerd.log" 2>&1 &
containerd_pid=$!
for _ in $(seq 50); do [ -S "$work/containerd.sock" ] && break; sleep 0.1; done
ctr --address "$work/containerd.sock" -n k8s.io images import "$archive" >"$work/ctr.log" 2>&1 ||
    fail "ctr images import"
ctr --address "$work/containerd.sock" -n k8s.io images ls -q | grep -qx "docker.io/library/sriov-rs:$version" ||
    fail "ctr has no docker.io/library/sriov-rs:$version (what the DaemonSet's sriov-rs:$version means)"
kill "$containerd_pid"; wait "$containerd_pid" 2>/dev/null || true; containerd_pid=

mkdir -p "$work/image" && tar -xf "$archive" -C "$work/image"
cargo build --quiet --manifest-path "$repo/Cargo.toml" \
    -p sriovnet --features sriovnet/fake-sysfs --example fake-sysfs \
    -p kubelet-api --features kubelet-api/fake-kubelet --example fake-kubelet
examples=${CARGO_TARGET_DIR:-$repo/target}/debug/examples
"$examples/fake-sysfs" "$node/sys"
mkdir -p "$node/var/lib/kubelet/device-plugins" "$node/var/lib/kubelet/plugins_registry"

# run NAME ID [ARG...]: runs container NAME of the DaemonSet to its end.
run() {
    local name=$1 id=$2
    shift 2
    python3 "$here/bundle.py" "$work/image" "$node" "$work/$id" "$name" "$@"
    touch "$work/running.$id"
    runc run --bundle "$work/$id" "$id" >"$work/$id.log" 2>&1 </dev/null
}

# 1. The init container.
run install-cni sriov-rs-install-cni || fail "install-cni"
cni=$node/opt/cni/bin/sriov
[ -x "$cni" ] || fail "install-cni left no executable $cni"
CNI_COMMAND=VERSION "$cni" </dev/null | grep -q '"supportedVersions"' || fail "the installed sriov does not answer VERSION"
run install-cni sriov-rs-install-cni-again || fail "install-cni, again"
grep -q "is up to date" "$work/sriov-rs-install-cni-again.log" || fail "a second install-cni was not a no-op"
echo "image: install-cni: $(cat "$work/sriov-rs-install-cni.log")"

# 2. The upstream name, and discover as an operator would run it.
run kube-sriovdp sriov-rs-discover sriovdp discover --config-file=/etc/pcidp/config.json ||
    fail "sriovdp discover"
for pool in intel_sriov_netdevice intel_sriov_dpdk mlnx_sriov_rdma; do
    grep -q "intel.com/$pool" "$work/sriov-rs-discover.log" || fail "sriovdp discover shows no $pool"
done

# 3. The daemon, with the DaemonSet's args and mounts, and kubelet.
"$examples/fake-kubelet" plugins "$node/var/lib/kubelet/plugins_registry" "$node" >"$work/kubelet.log" 2>&1 &
python3 "$here/bundle.py" "$work/image" "$node" "$work/sriov-rs-daemon" kube-sriovdp
touch "$work/running.sriov-rs-daemon"
runc run --bundle "$work/sriov-rs-daemon" sriov-rs-daemon >"$work/sriov-rs-daemon.log" 2>&1 </dev/null &
port=$(python3 -c 'import yaml,sys; c=yaml.safe_load(open(sys.argv[1]))["spec"]["template"]["spec"]["containers"][0]; print(next(p["containerPort"] for p in c["ports"] if p["name"]=="metrics"))' "$repo/deploy/base/daemonset.yaml")
ready=
for _ in $(seq 100); do
    if [ "$(grep -c '^registered' "$work/kubelet.log")" = 3 ] &&
        grep -q '^list intel.com/intel_sriov_netdevice .*=Healthy@0 .*=Healthy@0 .*=Healthy@0$' "$work/kubelet.log" &&
        python3 -c 'import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)' \
            "http://127.0.0.1:$port/readyz" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.1
done
[ -n "$ready" ] || fail "in 10 s, the daemon did not register its three pools, list the three kernel-driver VFs and become ready"
grep '^registered' "$work/kubelet.log" | sed 's/^/image: daemon: /'

# An upgrade or a drain stops the pod with SIGTERM: the daemon leaves, and
# takes its sockets with it.
runc kill sriov-rs-daemon TERM
for _ in $(seq 50); do
    [ "$(runc state sriov-rs-daemon 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])' 2>/dev/null)" = running ] || break
    sleep 0.1
done
leftovers=$(find "$node/var/lib/kubelet" -name '*.sock')
[ -z "$leftovers" ] || fail "sockets left after SIGTERM: $leftovers"
echo "image: PASS"
