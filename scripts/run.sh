#!/usr/bin/env bash
# The main job: the demo in the emulated SR-IOV NIC lab. It boots a real
# kernel under QEMU with an emulated Intel 82576 NIC, runs the device plugin
# against a fake kubelet, gives two pods a VF each (Allocate, then the sriov
# CNI with VLAN and host-local IPAM), pings from one to the other, and
# deletes both. Run as root on Debian bookworm; installs what it needs.
# On a real node, see docs/device-plugin.md and docs/cni.md instead.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
bash hw-tests/run.sh --demo
