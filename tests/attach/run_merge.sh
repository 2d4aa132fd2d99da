#!/bin/sh
# heapprof_profile_merge() read back with go tool pprof: the merged profile
# carries both pid labels and twice the samples; the self-subtraction is
# empty. usage: run_merge.sh ATTACH_MERGE WORKDIR
set -u
prog=$1 work=$2
rm -rf "$work" && mkdir -p "$work" || exit 1
export PPROF_TMPDIR="$work/pprof"
fail() { echo "run_merge: FAIL: $*" >&2; exit 1; }

"$prog" "$work" || fail "attach_merge exited with $?"
# Without Go the profile cannot be read back: skipped (ctest: 77).
command -v go >/dev/null 2>&1 || { echo "run_merge: go not found, profile not read: skipped"; exit 77; }

tags=$(go tool pprof -tags "$work/merged.pb.gz" 2>&1) || fail "pprof: $tags"
echo "$tags"
echo "$tags" | grep -q "pid:" || fail "no pid label"
echo "$tags" | grep -q ": 101" || fail "no pid 101"
echo "$tags" | grep -q ": 202" || fail "no pid 202"

# The site's in-use bytes: merged = 2 x own (rate 1: 64 x 4 KiB each).
site() { go tool pprof -top -nodefraction=0 -sample_index="$1" "$2" 2>/dev/null |
         awk '$NF == "merge_site" { print $1 }'; }
own=$(site inuse_space "$work/own.pb.gz")
merged=$(site inuse_space "$work/merged.pb.gz")
focused=$(go tool pprof -top -nodefraction=0 -sample_index=inuse_space \
          -tagfocus=pid=202 "$work/merged.pb.gz" 2>/dev/null |
          awk '$NF == "merge_site" { print $1 }')
echo "own=$own merged=$merged pid202=$focused"
[ -n "$own" ] || fail "merge_site missing from the process's own profile"
[ "$own" = "256kB" ] || fail "own in-use $own, expected 256kB"
[ "$merged" = "512kB" ] || fail "merged in-use $merged, expected 512kB"
[ "$focused" = "256kB" ] || fail "pid=202 in-use $focused, expected 256kB"

# The allocs default sample type, as in Go.
go tool pprof -top "$work/merged.pb.gz" 2>/dev/null | grep -q "alloc_space" ||
    fail "merged allocs profile does not default to alloc_space"

st=$(go tool pprof -tags "$work/strlabel.pb.gz" 2>&1) || fail "pprof: $st"
echo "$st" | grep -q "worker: Total" || fail "no string label"
echo "$st" | grep -q "): a\$" || fail "no string label value"

raw=$(go tool pprof -raw "$work/cancelled.pb.gz" 2>&1) || fail "pprof: $raw"
echo "$raw" | grep -q merge_site && fail "p - p still has samples"
echo "run_merge: ok"
