#!/bin/sh
# Runs range_workload.c's checks under heapprof one way and fails on
# anything but "ok" on stdout and nothing from heapprof on stderr.
#   run_range.sh LIBHEAPPROF WORKLOAD glibc|jemalloc|default|rate0
# jemalloc: heapprof over Debian's libjemalloc2 (skipped, 77, without it).
set -u
lib=$1 workload=$2 how=$3
jemalloc=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)/libjemalloc.so.2
args=
case $how in
glibc) preload=$lib rate=1 ;;
default) preload=$lib rate= args=--anywhere ;;
rate0) preload=$lib rate=0 args=--expect-outside ;;
jemalloc)
    [ -f "$jemalloc" ] || { echo "skipped: no $jemalloc"; exit 77; }
    preload=$lib:$jemalloc rate=1 ;;
*) echo "unknown way $how" >&2; exit 2 ;;
esac
err=$(mktemp)
trap 'rm -f "$err"' EXIT
if [ -n "$rate" ]; then
    out=$(env LD_PRELOAD="$preload" HEAPPROF_RATE=$rate "$workload" $args 2>"$err")
else
    out=$(env -u HEAPPROF_RATE LD_PRELOAD="$preload" "$workload" $args 2>"$err")
fi
rc=$?
if [ "$rc" -ne 0 ] || [ "$out" != ok ] || [ -s "$err" ]; then
    echo "FAIL [$how]: exit $rc, stdout: $out"
    echo "stderr:"
    cat "$err"
    exit 1
fi
echo "ok [$how]"
