# Runs every scenario in $LAB_DIR/scenarios, each in its own subshell with
# lib.sh, and prints PASS, FAIL (with its log) or SKIP per scenario, then a
# summary; exits non-zero if any failed. On real hardware (LAB_HARDWARE=1),
# scenarios marked "# lab: emulated NIC only" are skipped: they check
# what only the emulated 82576 does. LAB_ONLY (globs, space-separated)
# keeps only the scenarios whose names match. Each scenario is announced
# with "lab: RUN name" before it starts, so that the host's watchdog knows
# where a silent guest stopped; PASS and FAIL say how long it took.
# LAB_STALL and LAB_PANIC (test only, set by the host's LAB_STALL_TEST) name
# a scenario in which the guest hangs, or its kernel panics, on purpose, to
# test that watchdog.
lab=${LAB_DIR:-/lab}
logs=$(mktemp -d)
passed=0 failed=0 skipped=0
for scenario in "$lab"/scenarios/*.sh; do
    name=$(basename "$scenario" .sh)
    if [ -n "${LAB_ONLY:-}" ]; then
        keep=0
        for glob in $LAB_ONLY; do case $name in $glob) keep=1 ;; esac; done
        [ "$keep" = 1 ] || continue
    fi
    if [ "${LAB_HARDWARE:-0}" = 1 ] && grep -q '^# lab: emulated NIC only' "$scenario"; then
        skipped=$((skipped + 1)); echo "lab: SKIP $name (emulated NIC only)"
        continue
    fi
    echo "lab: RUN $name"
    # Never on real hardware, where this runs on the host itself: a LAB_PANIC
    # left in a user's environment must not crash their machine.
    if [ "${LAB_HARDWARE:-0}" != 1 ]; then
        if [ "$name" = "${LAB_STALL:-}" ]; then
            # Silent until the host's watchdog ends the guest.
            sleep 2147483647
        fi
        [ "$name" = "${LAB_PANIC:-}" ] && echo c >/proc/sysrq-trigger
    fi
    start=$(date +%s)
    if (. "$lab/lib.sh" && . "$scenario") >"$logs/$name.log" 2>&1; then
        passed=$((passed + 1)); echo "lab: PASS $name ($(($(date +%s) - start)) s)"
    else
        failed=$((failed + 1)); echo "lab: FAIL $name ($(($(date +%s) - start)) s)"; sed 's/^/    /' "$logs/$name.log"
    fi
done
rm -rf "$logs"
echo "lab: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
