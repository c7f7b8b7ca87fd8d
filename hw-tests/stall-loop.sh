#!/usr/bin/env bash
# Hunts lab stalls: boots the lab ROUNDS times (LAB_ROUNDS, see lab.py) with
# LOAD busy processes competing for the CPUs, as other builds do on a CI
# machine, never retrying, and says how each boot ended. The machine's
# variants come from lab.py's settings, e.g. LAB_SMP=1, LAB_IOMMU=0 (no
# vfio scenarios then), LAB_TCG_THREAD=single; LAB_ONLY picks the
# scenarios. Stall evidence is kept in LAB_EVIDENCE (target/lab-evidence).
#   stall-loop.sh ROUNDS [LOAD]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rounds=${1:?usage: stall-loop.sh ROUNDS [LOAD]}
load=${2:-2}
hogs=()
trap 'kill "${hogs[@]}" 2>/dev/null || true' EXIT
for _ in $(seq "$load"); do
    (while :; do :; done) &
    hogs+=($!)
done
echo "stall-loop: $rounds boots beside $load busy processes; LAB_SMP=${LAB_SMP:-2} LAB_IOMMU=${LAB_IOMMU:-1}" \
    "LAB_INTREMAP=${LAB_INTREMAP:-on}" \
    "LAB_TCG_THREAD=${LAB_TCG_THREAD:-default} LAB_ONLY=${LAB_ONLY:-all}"
LAB_ROUNDS=$rounds bash "$here/run.sh"
