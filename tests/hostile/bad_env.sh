#!/usr/bin/env bash
# A bad HEAPPROF_* value must be reported with exactly one stderr line while
# the host runs normally (exit 0, nothing else on stderr), the default kept.
# usage: bad_env.sh LIB
set -u
lib=$1
fail=0
check() {
    local var=$1 value=$2
    local err
    err=$(mktemp)
    timeout -k 5 20 env -u LD_PRELOAD "$var=$value" LD_PRELOAD="$lib" /bin/true 2>"$err"
    local rc=$?
    local lines
    lines=$(wc -l <"$err")
    if [ "$rc" != 0 ]; then
        echo "FAIL: $var=$value /bin/true exited $rc" >&2
        fail=1
    elif [ "$lines" != 1 ]; then
        echo "FAIL: $var=$value gave $lines stderr lines, expected 1:" >&2
        cat "$err" >&2
        fail=1
    elif ! grep -q "$var" "$err"; then
        echo "FAIL: $var=$value: the stderr line does not name $var:" >&2
        cat "$err" >&2
        fail=1
    else
        echo "ok: $var=$value -> $(cat "$err")"
    fi
    rm -f "$err"
}
check HEAPPROF_RATE banana
check HEAPPROF_RATE -1
check HEAPPROF_RATE 12abc
check HEAPPROF_STACK_DEPTH banana
# A program that prints: same stdout as without heapprof.
want=$(printf 'a\nb\n' | sort -r)
got=$(printf 'a\nb\n' | env HEAPPROF_RATE=banana LD_PRELOAD="$lib" sort -r 2>/dev/null)
if [ "$want" != "$got" ]; then
    echo "FAIL: sort -r under HEAPPROF_RATE=banana printed '$got'" >&2
    fail=1
fi
[ "$fail" = 0 ] && echo PASS
exit "$fail"
