#!/usr/bin/env bash
# Quick start, part 1: installs what is missing, builds heapprof, runs a
# demo server that knows nothing about heapprof under
#   LD_PRELOAD=build/libheapprof.so HEAPPROF_HTTP=127.0.0.1:PORT
# and prints `go tool pprof -top` of its live /debug/pprof/heap (who holds
# memory) and /debug/pprof/allocs (who allocates the most).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
scripts/build.sh build >/dev/null
echo "demo: built build/libheapprof.so"

lib=$PWD/build/libheapprof.so
server=$PWD/build/tests/e2e/hp_demo_server
tmp=$(mktemp -d "${TMPDIR:-/tmp}/heapprof-demo.XXXXXX")
export PPROF_TMPDIR=$tmp/pprof
mkdir -p "$PPROF_TMPDIR"

port=$(/usr/bin/python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
url=http://127.0.0.1:$port
rate=${HEAPPROF_RATE:-65536}

echo "demo: HEAPPROF_HTTP=127.0.0.1:$port HEAPPROF_RATE=$rate" \
    "LD_PRELOAD=$lib $server"
HEAPPROF_HTTP=127.0.0.1:$port HEAPPROF_RATE=$rate LD_PRELOAD=$lib \
    "$server" 300 >"$tmp/server.out" 2>"$tmp/server.err" &
pid=$!
cleanup() {
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        wait "$pid" || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
    if grep -q ready "$tmp/server.out" 2>/dev/null &&
        curl -sf -o /dev/null "$url/debug/pprof/"; then
        break
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "demo: the server exited:" >&2
        cat "$tmp/server.err" >&2
        exit 1
    fi
    sleep 0.1
done
sleep 2 # let it serve some traffic

echo
echo "==== go tool pprof -top $url/debug/pprof/heap   (in-use memory)"
go tool pprof -top -nodecount=12 "$url/debug/pprof/heap"
echo
echo "==== go tool pprof -top $url/debug/pprof/allocs (allocated since start)"
go tool pprof -top -nodecount=12 "$url/debug/pprof/allocs"

cat <<TXT

demo: session_cache_insert and audit_log_append hold the memory (the audit
log grows: a leak); read_request_body and render_response allocate the most
but free it. With your own program:
  HEAPPROF_HTTP=127.0.0.1:6060 LD_PRELOAD=$lib ./your-server &
  go tool pprof -top http://127.0.0.1:6060/debug/pprof/heap
  go tool pprof -http=127.0.0.1:8080 http://127.0.0.1:6060/debug/pprof/heap  # web UI (graphviz)
  go tool pprof -sample_index=alloc_space -top http://127.0.0.1:6060/debug/pprof/allocs
TXT
