#!/usr/bin/env bash
# The lab's watchdog, tested with a guest that hangs on purpose
# (LAB_STALL_TEST): the silence is caught within LAB_STALL_SECS, QEMU and the
# guest kernel are asked for their state, and the scenarios not yet reported
# run in a second boot, which the summary names; a guest that hangs in
# every boot fails the run with the evidence of both; a guest whose kernel
# panics is booted again too.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# The guest boots in 8-20 s before its first line, and 01-discovery takes
# 4-7 s: a bound of 40 s leaves room on a busy machine.
bound=40
# Only this test's settings: none of the caller's lab settings apply.
unset LAB_ROUNDS LAB_RETRIES LAB_SMP LAB_IOMMU LAB_INTREMAP LAB_TCG_THREAD LAB_KERNEL_ARGS LAB_TIMEOUT
failures=0

check() { # description, then a command that must succeed
    local what=$1
    shift
    if "$@"; then echo "watchdog: ok: $what"; else echo "watchdog: FAILED: $what"; failures=$((failures + 1)); fi
}
has() { grep -qE -- "$2" "$out/$1"; }
count() { grep -cE -- "$2" "$out/$1" || true; }

# One hang in 02-vf-settings, in the first boot only.
status=0
LAB_ONLY="01-* 02-*" LAB_STALL_TEST=02-vf-settings LAB_STALL_SECS=$bound LAB_EVIDENCE=$out/evidence \
    bash "$here/run.sh" >"$out/once" 2>&1 || status=$?
check "a hang in the first boot is retried and the run passes" [ "$status" -eq 0 ]
check "the summary says which scenario stalled" \
    has once '^lab: 2 passed, 0 failed, 0 skipped after 1 retried boot: stall in 02-vf-settings at [0-9]+ s of boot 1'
silent=$(sed -n 's/.*boot 1: no line from the lab for \([0-9]*\) s, in 02-vf-settings.*/\1/p' "$out/once")
within_bound() { [ -n "$silent" ] && [ "$silent" -le $((bound + 2)) ]; }
check "the stall is caught within the bound ($bound s; took ${silent:-?} s)" within_bound
qemu_state() { has once 'RIP=.*HLT=' && has once 'dumping local APIC state for CPU 1' && has once '\(qemu\) info irq'; }
check "QEMU reports each vCPU's registers and local APIC" qemu_state
check "the exact QEMU command line is in the evidence" has once 'qemu-system-x86_64 .*-M q35.* -accel (tcg|kvm)'
check "the guest kernel answers the NMI with its report" has once 'Kernel panic - not syncing: NMI'
in_evidence() { grep -qE -- "$1" "$out"/evidence/*boot1-stall.txt; }
check "the hung scenario's sleep is in the guest's whole report" in_evidence 'task:sleep +state:S'
check "the second boot runs only what did not report" \
    has once 'booting again \(retry 1 of 1\) for 1 scenarios not yet reported'
check "01-discovery ran once" [ "$(count once '^lab: PASS 01-discovery')" -eq 1 ]
check "02-vf-settings passed in the second boot" has once '^lab: PASS 02-vf-settings'
check "the evidence file is kept" [ "$(ls "$out/evidence" | grep -c 'boot1-stall')" -eq 1 ]

# A hang in every boot: the run fails, with the evidence of both.
status=0
LAB_ONLY="02-*" LAB_STALL_TEST=02-vf-settings:every LAB_STALL_SECS=$bound LAB_EVIDENCE=$out/evidence-every \
    bash "$here/run.sh" >"$out/every" 2>&1 || status=$?
check "a hang in every boot fails the run" [ "$status" -ne 0 ]
check "both boots are diagnosed" [ "$(count every 'no line from the lab for [0-9]+ s, in 02-vf-settings')" -eq 2 ]
check "the failure names the scenario that never reported" \
    has every '^lab: failed: 1 scenarios never reported \(02-vf-settings\): boot 2 stall in 02-vf-settings'

# A guest whose kernel panics: the boot ends without its summary, and the
# scenarios not yet reported run again.
status=0
LAB_ONLY="02-*" LAB_STALL_TEST=02-vf-settings:panic LAB_STALL_SECS=$bound LAB_EVIDENCE=$out/evidence-panic \
    bash "$here/run.sh" >"$out/panic" 2>&1 || status=$?
check "a guest that panics is booted again and the run passes" [ "$status" -eq 0 ]
check "the summary says the first boot crashed" \
    has panic '^lab: 1 passed, 0 failed, 0 skipped after 1 retried boot: crash in 02-vf-settings'
check "the panic is shown" has panic 'Kernel panic - not syncing: sysrq triggered crash'

if [ "$failures" -ne 0 ]; then
    for run in once every panic; do echo "==== output of the $run run"; cat "$out/$run"; done
    echo "watchdog: $failures checks failed"
    exit 1
fi
