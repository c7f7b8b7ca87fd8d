#!/usr/bin/env bash
# The whole test suite. Run as root on Debian bookworm: the netlink and
# namespace tests use the real kernel in private network namespaces, and the
# lab boots a kernel under QEMU with emulated SR-IOV NICs; the image is
# built, loaded and run with runc as the DaemonSet runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
cargo nextest run --workspace --all-features
python3 deploy/tests/validate.py
bash hw-tests/run.sh
bash deploy/tests/image.sh
