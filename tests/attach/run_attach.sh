#!/bin/sh
# heapprof_attach() end to end: run attach_host (no LD_PRELOAD), then read
# its profiles back with go tool pprof.
# usage: run_attach.sh ATTACH_HOST LIBHEAPPROF PLUGIN WORKDIR
set -u
host=$1 lib=$2 plugin=$3 work=$4
rm -rf "$work" && mkdir -p "$work" || exit 1
unset LD_PRELOAD
export PPROF_TMPDIR="$work/pprof"

fail() { echo "run_attach: FAIL: $*" >&2; exit 1; }

"$host" "$lib" "$plugin" "$work" || fail "attach_host exited with $?"
# Without Go the profiles cannot be read back: skipped (ctest: 77).
command -v go >/dev/null 2>&1 || { echo "run_attach: go not found, profiles not read: skipped"; exit 77; }

top() { go tool pprof -top -nodefraction=0 -nodecount=100000 "$@" 2>&1; }

inuse=$(top -sample_index=inuse_space "$work/attached.pb.gz") || fail "pprof: $inuse"
echo "$inuse" | head -20
for f in site_after_attach site_calloc_after_attach site_memalign_after_attach plugin_alloc_site; do
    echo "$inuse" | grep -q " $f\$" || fail "$f missing from the in-use profile"
done
echo "$inuse" | grep -q site_before_attach && fail "a block from before attach was sampled"

# Attached again: the blocks sampled before the detach, freed while
# detached, are not in use any more; what the new attach sampled is.
again=$(top -sample_index=inuse_space "$work/reattached.pb.gz") || fail "pprof: $again"
echo "$again" | grep -q " site_after_reattach\$" || fail "site_after_reattach missing from the in-use profile after attaching again"
for f in site_after_attach site_calloc_after_attach site_memalign_after_attach; do
    echo "$again" | grep -q " $f\$" && fail "$f still in use after attaching again (its blocks were freed while detached)"
done

allocs=$(top -sample_index=alloc_space "$work/detached.pb.gz") || fail "pprof: $allocs"
echo "$allocs" | grep -q " churn\$" || fail "the threads' allocations are missing"
echo "$allocs" | grep -q site_after_detach && fail "an allocation after detach was sampled"
echo "$allocs" | grep -q site_before_attach && fail "a block from before attach was sampled"
# heapprof's own frames never lead a stack.
echo "$allocs" | awk '/%/ && $NF ~ /^(hp_|heapprof_|malloc$|calloc$|realloc$)/ { bad = 1 } END { exit !bad }' &&
    fail "heapprof frames in the profile"
echo "run_attach: ok"
