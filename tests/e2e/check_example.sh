#!/bin/sh
# Runs an example that writes a heap profile to its first argument and
# checks with go tool pprof that the expected function holds memory.
# usage: check_example.sh EXE OUTDIR FUNCTION
set -eu
exe=$1 out=$2 fn=$3
mkdir -p "$out"
rm -f "$out/heap.pb.gz"
"$exe" "$out/heap.pb.gz"
go tool pprof -top -nodecount=20 -unit=B -symbolize=none "$out/heap.pb.gz" \
    >"$out/top.txt"
cat "$out/top.txt"
# A row is "FLAT FLAT% SUM% CUM CUM% NAME"; FLAT is "<n>B" with -unit=B.
if ! awk -v fn="$fn" '$NF == fn && $1 + 0 > 0 { ok = 1 } END { exit !ok }' \
    "$out/top.txt"; then
    echo "FAIL: $fn holds no memory in the heap profile of $exe"
    exit 1
fi
echo "ok: $fn is in the heap profile"
