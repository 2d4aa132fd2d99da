#!/usr/bin/env bash
# Runs a command bare, then under LD_PRELOAD=libheapprof.so at the default
# rate and at HEAPPROF_RATE=1, and fails unless every preloaded run has the
# same exit code and stdout as the bare one (and the same stderr with
# --stderr). Each run is wrapped in timeout, so a hang fails instead of
# blocking CI. Outputs are kept in the work directory for inspection.
#
# usage: run_compare.sh --lib LIB --work DIR [--stderr] [--timeout S]
#                       [--skip-unless PATH] -- CMD ARGS...
set -u

lib=""
work=""
cmp_stderr=0
limit=60
skip_unless=""
while [ $# -gt 0 ]; do
    case "$1" in
    --lib) lib=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --stderr) cmp_stderr=1; shift ;;
    --timeout) limit=$2; shift 2 ;;
    --skip-unless) skip_unless=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "run_compare.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
if [ -z "$lib" ] || [ -z "$work" ] || [ $# -eq 0 ]; then
    echo "usage: run_compare.sh --lib LIB --work DIR [--stderr] [--timeout S] -- CMD..." >&2
    exit 2
fi
if [ -n "$skip_unless" ] && [ ! -e "$skip_unless" ]; then
    echo "SKIP: $skip_unless not present"
    exit 77
fi
if [ ! -f "$lib" ]; then
    echo "FAIL: $lib does not exist" >&2
    exit 1
fi

rm -rf "$work"
mkdir -p "$work"

# One run: $1 = label, then env assignments up to "--", then the command.
# The environment is cleaned of HEAPPROF_* so an ambient setting (a
# developer's shell) cannot change what is compared.
run_one() {
    local label=$1
    shift
    local envs=()
    while [ "$1" != "--" ]; do
        envs+=("$1")
        shift
    done
    shift
    local unset_args=()
    local v
    for v in $(compgen -e | grep '^HEAPPROF_' || true); do
        unset_args+=(-u "$v")
    done
    local start end
    start=$(date +%s%N)
    # timeout leads its own process group; whatever is left in that group
    # after the run (a hung grandchild whose parent was killed, which may
    # block every signal but SIGKILL) is killed, so nothing outlives the test.
    timeout -k 5 "$limit" env "${unset_args[@]}" -u LD_PRELOAD "${envs[@]}" "$@" \
        >"$work/$label.out" 2>"$work/$label.err" </dev/null &
    local tpid=$!
    wait "$tpid"
    local rc=$?
    if kill -0 -- "-$tpid" 2>/dev/null; then
        echo "$label: processes left behind in the run's process group; killed" >&2
        kill -KILL -- "-$tpid" 2>/dev/null
    fi
    end=$(date +%s%N)
    echo "$rc" >"$work/$label.rc"
    printf '%-8s rc=%-3s %6d ms  stdout=%s bytes stderr=%s bytes\n' "$label" "$rc" \
        $(((end - start) / 1000000)) "$(wc -c <"$work/$label.out")" \
        "$(wc -c <"$work/$label.err")"
}

run_one bare -- "$@"
run_one default LD_PRELOAD="$lib" -- "$@"
run_one rate1 LD_PRELOAD="$lib" HEAPPROF_RATE=1 -- "$@"

fail=0
bare_rc=$(cat "$work/bare.rc")
if [ "$bare_rc" = 77 ]; then
    echo "SKIP: the program says it cannot run here: $(head -c 300 "$work/bare.out")"
    exit 77
fi
if [ "$bare_rc" = 124 ] || [ "$bare_rc" = 137 ]; then
    echo "FAIL: the bare run timed out after ${limit}s; the test itself is broken" >&2
    exit 1
fi
for label in default rate1; do
    rc=$(cat "$work/$label.rc")
    if [ "$rc" != "$bare_rc" ]; then
        if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
            echo "FAIL [$label]: HANG: timed out after ${limit}s (bare exited $bare_rc)" >&2
        else
            echo "FAIL [$label]: exit code $rc, bare $bare_rc" >&2
        fi
        fail=1
    fi
    if ! cmp -s "$work/bare.out" "$work/$label.out"; then
        echo "FAIL [$label]: stdout differs from the bare run:" >&2
        diff "$work/bare.out" "$work/$label.out" | head -20 >&2
        fail=1
    fi
    if [ "$cmp_stderr" = 1 ] && ! cmp -s "$work/bare.err" "$work/$label.err"; then
        echo "FAIL [$label]: stderr differs from the bare run:" >&2
        diff "$work/bare.err" "$work/$label.err" | head -20 >&2
        fail=1
    fi
done
if [ "$fail" = 0 ]; then
    echo "PASS: exit $bare_rc, $(wc -c <"$work/bare.out") bytes of identical stdout" \
        "$([ "$cmp_stderr" = 1 ] && echo and stderr) in all three runs"
else
    echo "outputs kept in $work" >&2
    tail -n 5 "$work"/*.err >&2
fi
exit "$fail"
