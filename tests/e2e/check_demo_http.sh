#!/usr/bin/env bash
# The Quick start's path, as a test: demo_server (which knows nothing about
# heapprof) runs under LD_PRELOAD with HEAPPROF_HTTP on a free port, and
# `go tool pprof` reads its live /debug/pprof/heap and /debug/pprof/allocs.
# usage: check_demo_http.sh LIBHEAPPROF DEMO_SERVER OUTDIR
set -euo pipefail
lib=$1 server=$2 out=$3
mkdir -p "$out"
export PPROF_TMPDIR=${PPROF_TMPDIR:-$out/pprof}
mkdir -p "$PPROF_TMPDIR"

port=$(/usr/bin/python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
url=http://127.0.0.1:$port

HEAPPROF_HTTP=127.0.0.1:$port HEAPPROF_RATE=4096 LD_PRELOAD=$lib \
    "$server" 120 >"$out/server.out" 2>"$out/server.err" &
pid=$!
stop_server() {
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        wait "$pid" || true
    fi
}
trap stop_server EXIT

for _ in $(seq 1 100); do
    if grep -q ready "$out/server.out" 2>/dev/null &&
        curl -sf -o /dev/null "$url/debug/pprof/"; then
        break
    fi
    kill -0 "$pid" 2>/dev/null || { cat "$out/server.err"; exit 1; }
    sleep 0.1
done

fail=0
# flat FUNCTION SAMPLE_INDEX PATH -> flat value in bytes (0 if absent)
flat() {
    go tool pprof -top -nodecount=1000 -unit=B -sample_index="$2" \
        "$url$3" 2>"$out/pprof.err" | tee -a "$out/top.txt" |
        awk -v fn="$1" '$NF == fn { v = $1 + 0 } END { print v + 0 }'
}
expect() { # FUNCTION SAMPLE_INDEX PATH OP(>0|=0)
    local v
    v=$(flat "$1" "$2" "$3")
    if { [[ $4 == ">0" ]] && ((v > 0)); } ||
        { [[ $4 == "=0" ]] && ((v == 0)); }; then
        echo "ok: $3 $2 $1 = $v"
    else
        echo "FAIL: $3 $2 $1 = $v, want $4"
        cat "$out/pprof.err"
        fail=1
    fi
}
expect session_cache_insert inuse_space /debug/pprof/heap ">0"
expect audit_log_append inuse_space /debug/pprof/heap ">0"
expect read_request_body inuse_space /debug/pprof/heap "=0"
expect read_request_body alloc_space /debug/pprof/allocs ">0"
expect render_response alloc_space /debug/pprof/allocs ">0"

# The allocs profile defaults to alloc_space, the heap one to inuse_space.
go tool pprof -top -nodecount=5 "$url/debug/pprof/allocs" >"$out/allocs.txt"
grep -q '^Type: alloc_space' "$out/allocs.txt" ||
    { echo "FAIL: /debug/pprof/allocs does not default to alloc_space"; fail=1; }
go tool pprof -top -nodecount=5 "$url/debug/heap" >"$out/heap-alias.txt"
grep -q '^Type: inuse_space' "$out/heap-alias.txt" ||
    { echo "FAIL: /debug/heap is not the heap profile"; fail=1; }

stop_server
trap - EXIT
if [[ -s $out/server.err ]]; then
    echo "FAIL: the server wrote to stderr:"
    cat "$out/server.err"
    fail=1
fi
grep -q "served" "$out/server.out" ||
    { echo "FAIL: the server did not exit cleanly on SIGTERM"; fail=1; }
exit $fail
