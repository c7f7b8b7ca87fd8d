# Sourced by the scripts that a person runs: names each long step before it
# starts, says every minute that it is still going, and how it ended and how
# long it took. All of it goes to stderr, so that a step's own output (the
# demo's, a build's directory on stdout) stays as it was.
#   step "what it does" "how long it usually takes, or empty" COMMAND...
# COMMAND is a program or script, not a shell function: `set -e` does not
# hold inside a function run as a condition.

step_clock() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

step() {
    local what=$1 usual=$2 start=$SECONDS ticker status
    shift 2
    echo "==> $what${usual:+ ($usual)}" >&2
    # The ticker's own output goes nowhere but stderr: in `out=$(step ...)`
    # it must not hold the capture open. It is ended with KILL, which no
    # trap or inherited ignore delays; its last sleep, if any, writes
    # nothing and ends within a minute.
    (
        while sleep 60 2>/dev/null; do
            echo "    ... still $what: $(step_clock $((SECONDS - start))) so far" >&2
        done
    ) >/dev/null &
    ticker=$!
    if "$@"; then status=0; else status=$?; fi
    kill -KILL "$ticker" 2>/dev/null || true
    wait "$ticker" 2>/dev/null || true
    if [ "$status" -eq 0 ]; then
        echo "    done in $(step_clock $((SECONDS - start)))" >&2
    else
        echo "==> FAILED: $what (exit $status after $(step_clock $((SECONDS - start))))" >&2
    fi
    return "$status"
}
