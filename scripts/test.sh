#!/usr/bin/env bash
# The whole test suite. Run as root on Debian bookworm: the netlink and
# namespace tests use the real kernel in private network namespaces, and the
# lab boots a kernel under QEMU with emulated SR-IOV NICs.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
cargo nextest run --workspace --all-features
bash hw-tests/run.sh
