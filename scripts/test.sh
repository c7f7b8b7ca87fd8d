#!/usr/bin/env bash
# The whole test suite. Run as root on Debian bookworm: the netlink and
# namespace tests use the real kernel in private network namespaces, and the
# lab boots a kernel under QEMU with emulated SR-IOV NICs; the image is
# built, loaded and run with runc as the DaemonSet runs it.
# Each step says what it does and how long it took.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/step.sh

step "installing what is missing (first run: a few minutes)" "" scripts/install-deps.sh
step "cargo fmt --check" "" cargo fmt --all --check
step "cargo clippy -D warnings" "a few minutes from a cold cache" \
    cargo clippy --workspace --all-targets --all-features -- -D warnings
step "the crates' tests (cargo nextest)" "about 3 min from a cold cache" cargo nextest run --workspace --all-features
step "the manifests against Kubernetes' schemas" "" python3 deploy/tests/validate.py
bash hw-tests/run.sh
step "the lab's watchdog: a guest hung on purpose is caught and booted again" "about 3.5 min" \
    bash hw-tests/tests/watchdog.sh
step "the image, loaded and run with runc" "under a minute" bash deploy/tests/image.sh
