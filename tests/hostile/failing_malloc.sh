#!/usr/bin/env bash
# An allocator failing below heapprof while the host writes profiles
# (export_under_failures.c under LD_PRELOAD=libheapprof.so:failing_malloc):
# for every failure period N, several runs must each exit 0 and print
# "survived" (the host alone always does), with at most one heapprof line
# on stderr; a profile written whole still names the host's functions.
# The failures start after the host's first profile (HP_FAIL_LATE, see
# failing_malloc.c: glibc's own abort when a thread's first use of libdw
# cannot allocate its thread-local state is not heapprof's to prevent).
#
# usage: failing_malloc.sh LIBHEAPPROF SHIM HOST PLUGIN WORKDIR
set -u
lib=$1 shim=$2 host=$3 plugin=$4 work=$5
runs=${HP_FAILING_RUNS:-3}
rm -rf "$work"
mkdir -p "$work"
failures=0
named=0

fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

# The host with the shim and without heapprof: the test is void if it dies.
mkdir -p "$work/bare"
HP_FAIL_EVERY=50 LD_PRELOAD=$shim timeout 60 "$host" "$plugin" "$work/bare" \
    >"$work/bare.out" 2>"$work/bare.err"
rc=$?
if [ "$rc" -ne 0 ] || [ "$(cat "$work/bare.out")" != survived ]; then
    echo "FAIL: the host dies under the failing allocator alone (rc=$rc)"
    exit 1
fi

for n in ${HP_FAILING_NS:-50 97 200}; do
    for i in $(seq "$runs"); do
        d=$work/n$n.$i
        mkdir -p "$d"
        env -u HEAPPROF_HTTP HEAPPROF_RATE=512 HP_FAIL_EVERY=$n HP_FAIL_LATE=1 \
            LD_PRELOAD="$lib:$shim" timeout 60 "$host" "$plugin" "$d" \
            >"$d/out" 2>"$d/err"
        rc=$?
        lines=$(grep -c '^heapprof\[' "$d/err")
        echo "N=$n run $i: rc=$rc, heapprof lines: $lines, $(grep -v '^heapprof\[' "$d/err" | tail -1)"
        [ "$rc" -eq 0 ] || fail "N=$n run $i: exit $rc: $(tail -2 "$d/err" | tr '\n' ' ')"
        [ "$(cat "$d/out")" = survived ] || fail "N=$n run $i: stdout is not 'survived'"
        [ "$lines" -le 1 ] || fail "N=$n run $i: $lines heapprof lines: $(grep '^heapprof\[' "$d/err" | tr '\n' ' ')"
        if [ -f "$d/last.pb.gz" ] && gzip -dc "$d/last.pb.gz" | grep -aq alloc_at; then
            named=$((named + 1))
        fi
    done
done
# libdw allocates apart from the failing allocator: some profile written
# whole names the host's function.
[ "$named" -gt 0 ] || fail "no profile written whole names alloc_at"
if [ "$failures" -ne 0 ]; then
    echo "$failures failure(s)"
    exit 1
fi
echo "PASS ($named profiles name alloc_at)"
