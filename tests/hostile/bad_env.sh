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
# A process tree (a launcher's script starting others, each preloaded with
# the same environment): one line per bad variable for the whole tree, from
# its first process, not one from each (six here before).
err=$(mktemp)
timeout -k 5 20 env HEAPPROF_RATE=banana HEAPPROF_HTTP=127.0.0.1:0 \
    LD_PRELOAD="$lib" /bin/sh -c '/bin/sh -c /bin/true & wait; /bin/true & wait' 2>"$err"
lines=$(wc -l <"$err")
if [ "$lines" != 2 ] || ! grep -q HEAPPROF_RATE "$err" ||
    ! grep -q HEAPPROF_HTTP "$err"; then
    echo "FAIL: a tree of 3 processes gave $lines stderr lines, expected 2:" >&2
    cat "$err" >&2
    fail=1
else
    echo "ok: a tree of 3 processes -> 2 lines"
fi
rm -f "$err"
[ "$fail" = 0 ] && echo PASS
exit "$fail"
