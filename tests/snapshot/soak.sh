#!/bin/sh
# Soak run of the snapshot writer and the metadata budget: many threads
# churning allocations over many distinct stacks under LD_PRELOAD, with
# HEAPPROF_MAX_MEMORY=4M, periodic snapshots (KEEP=3) and RSS sampled every
# half second. The CI version of this is the 60 s ctest snapshot.soak; this
# script runs the long one.
#
# usage: tests/snapshot/soak.sh [BUILD_DIR] [SECONDS] [THREADS]
#   BUILD_DIR  a configured and built tree (default: build)
#   SECONDS    run length (default 1800; "--short" means 60)
#   THREADS    churning threads (default 8)
#
# Passes when profiler metadata stays within the budget, dropped stacks are
# counted in the profile comments, the bucket table stops growing at the
# budget and the RSS of the last quarter is not above the second quarter's
# by more than 16 MiB. Prints the RSS figures and the self-report.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
secs=${2:-1800}
threads=${3:-8}
[ "$secs" = "--short" ] && secs=60

workload=$build/tests/snapshot/snap_workload
lib=$build/libheapprof.so
for f in "$workload" "$lib"; do
    if [ ! -e "$f" ]; then
        echo "soak.sh: $f not found; build first (cmake --build $build)" >&2
        exit 2
    fi
done

workdir=${TMPDIR:-/tmp}/heapprof-soak.$$
mkdir -p "$workdir"
echo "soak: $secs s, $threads threads, work directory $workdir"
status=0
/usr/bin/python3 "$here/snapshot_test.py" soak --workload "$workload" \
    --preload "$lib" --workdir "$workdir" --seconds "$secs" \
    --threads "$threads" || status=$?
rm -rf "$workdir"
exit $status
