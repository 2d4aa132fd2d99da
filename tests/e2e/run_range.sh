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
snaps=$(mktemp -d)
trap 'rm -rf "$err" "$snaps"' EXIT
if [ -n "$rate" ]; then
    # an exit snapshot, whose comments report the range (checked below)
    out=$(env LD_PRELOAD="$preload" HEAPPROF_RATE=$rate \
        HEAPPROF_SNAPSHOT_DIR="$snaps" HEAPPROF_SNAPSHOT_AT_EXIT=1 \
        "$workload" $args 2>"$err")
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
# The profile says how much of the range is committed and kept resident.
if [ "$how" = glibc ] && command -v go >/dev/null 2>&1; then
    snap=$(ls "$snaps"/*.pb.gz 2>/dev/null | head -n 1)
    line=$(go tool pprof -comments "$snap" 2>&1 | grep 'heapprof sample range:')
    case $line in
    *"range: 0 bytes committed"* | "")
        echo "FAIL [$how]: comments of $snap: ${line:-no sample range line}"
        exit 1 ;;
    esac
    echo "$line"
fi
echo "ok [$how]"
