#!/usr/bin/env bash
# The main job, for now: build the device plugin and print the SR-IOV
# physical and virtual functions this host has. Arguments go to `discover`
# (e.g. --sysfs-root DIR).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --release --quiet -p sriov-device-plugin
exec target/release/sriov-device-plugin discover "$@"
