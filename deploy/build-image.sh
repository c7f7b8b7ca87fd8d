#!/usr/bin/env bash
# Builds the sriov-rs image, offline: no base image, nothing pulled. It holds
# the two static executables and a `sriovdp` link, the name upstream's
# DaemonSets and operators run:
#   /usr/bin/sriov-device-plugin   the daemon, `discover`, `install-cni`
#   /usr/bin/sriovdp -> sriov-device-plugin
#   /usr/bin/sriov                 the CNI, which install-cni copies to nodes
#
#   build-image.sh [OUT_DIR]
#
# Tags sriov-rs:<version> in buildah's local store and writes
# OUT_DIR/sriov-rs-<version>.tar (default: target/image), a docker-archive
# that `podman load` and `ctr images import` take. Prints that path.
# Run as root on Debian bookworm; installs buildah if it is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out_dir=${1:-${CARGO_TARGET_DIR:-$here/../target}/image}

if ! command -v buildah >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends buildah >&2
fi

bin=$("$here/build-static.sh")
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$here/../Cargo.toml")
tag=sriov-rs:$version

container=$(buildah from scratch)
trap 'buildah rm "$container" >/dev/null 2>&1 || true' EXIT
root=$(buildah mount "$container")
install -D -m 0755 "$bin/sriov-device-plugin" "$root/usr/bin/sriov-device-plugin"
install -m 0755 "$bin/sriov" "$root/usr/bin/sriov"
ln -s sriov-device-plugin "$root/usr/bin/sriovdp"
buildah umount "$container" >/dev/null

buildah config \
    --entrypoint '["/usr/bin/sriov-device-plugin"]' --cmd '' \
    --env PATH=/usr/bin --workingdir / \
    --label org.opencontainers.image.title=sriov-rs \
    --label org.opencontainers.image.description="SR-IOV device plugin and CNI for Kubernetes" \
    --label org.opencontainers.image.version="$version" \
    --label org.opencontainers.image.licenses=Apache-2.0 \
    "$container"
# --timestamp 0: the same executables give the same image.
previous=$(buildah images --quiet --no-trunc "$tag" 2>/dev/null || true)
image=$(buildah commit --quiet --rm --timestamp 0 --format docker "$container" "$tag")
trap - EXIT
# The build this one replaced would linger untagged.
if [ -n "$previous" ] && [ "$previous" != "$image" ] && [ "${previous#sha256:}" != "$image" ]; then
    buildah rmi "$previous" >/dev/null 2>&1 || true
fi

mkdir -p "$out_dir"
archive=$out_dir/sriov-rs-$version.tar
rm -f "$archive"
buildah push --quiet "$tag" "docker-archive:$archive:$tag" >&2
echo "$archive"
