#!/usr/bin/env bash
# The main job: the demo in the emulated SR-IOV NIC lab. It boots a real
# kernel under QEMU with an emulated Intel 82576 NIC, runs the device plugin
# against a fake kubelet, gives two pods a VF each (Allocate, then the sriov
# CNI with VLAN and host-local IPAM), pings from one to the other, and
# deletes both. Run as root on Debian bookworm; installs what it needs.
# On a real node, see docs/device-plugin.md and docs/cni.md instead.
# Each step says what it does and how long it took; the first run on a fresh
# machine spends most of its time installing and building.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/step.sh

step "installing what is missing (first run: a few minutes)" "" scripts/install-deps.sh
bash hw-tests/run.sh --demo
