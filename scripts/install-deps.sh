#!/usr/bin/env bash
# Installs what the build and tests need on a fresh Debian bookworm machine
# (run as root). Installs only what is missing, so a second run is quick.
set -euo pipefail

if ! command -v cargo >/dev/null; then
    echo "install-deps: cargo not found; install a Rust toolchain (rustup) first" >&2
    exit 1
fi

packages=()
command -v ip >/dev/null || packages+=(iproute2)   # netns and link tests check with ip
command -v cc >/dev/null || packages+=(gcc libc6-dev)
[ -x /usr/lib/cni/host-local ] || packages+=(containernetworking-plugins) # real IPAM for the CNI tests
# The image: built with buildah, loaded by podman and containerd's ctr, run by runc.
for tool in buildah podman runc containerd; do
    command -v "$tool" >/dev/null || packages+=("$tool")
done

if ((${#packages[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi

# grpcio (gRPC C-core) is the independent gRPC client the daemon's tests
# call it with.
if ! python3 -c 'import grpc' 2>/dev/null; then
    python3 -m pip install --quiet --root-user-action=ignore grpcio
fi
# kubernetes-validate checks the manifests against Kubernetes' schemas.
if ! python3 -c 'import kubernetes_validate' 2>/dev/null; then
    python3 -m pip install --quiet --root-user-action=ignore kubernetes-validate
fi

for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        rustup component add "$component"
    fi
done

if ! cargo nextest --version >/dev/null 2>&1; then
    cargo install --locked cargo-nextest
fi
