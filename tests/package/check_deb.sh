#!/usr/bin/env bash
# Checks the Debian package as a user gets it, unpacked into a temporary
# root with dpkg-deb -x (nothing is installed on the machine):
#   - the files are where Debian puts them, the module has no RUNPATH,
#     the modules-available snippet loads the packaged module;
#   - /usr/bin/heapprof run profiles a program (python3.11, every
#     allocation sampled) and its /debug/pprof/heap names CPython's
#     allocating functions;
#   - Debian's nginx loads the module through the snippet (the unpacked
#     root's paths substituted, LD_LIBRARY_PATH standing for ldconfig) and
#     /debug/pprof/heap names nginx's own allocation sites.
# usage: tests/package/check_deb.sh DEB WORKDIR
set -euo pipefail
deb=$1 work=$2

fail() {
    echo "check_deb: FAIL: $*" >&2
    exit 1
}

free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits (up to 20 s) until URL answers 200, then writes its body to FILE.
fetch_when_up() {
    local url=$1 file=$2 i
    for ((i = 0; i < 200; i++)); do
        curl -sf -o "$file" "$url" && return 0
        sleep 0.1
    done
    fail "no answer from $url"
}

# "FLAT ... NAME" rows of go tool pprof -top with FLAT > 0 and NAME
# matching the regex.
top_has() {
    awk -v re="$2" '$NF ~ re && $1 + 0 > 0 { ok = 1 } END { exit !ok }' "$1"
}

rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
export PPROF_TMPDIR=$work/pprof
root=$work/root
dpkg-deb -x "$deb" "$root"
multiarch=$(gcc -print-multiarch)
module=usr/lib/nginx/modules/ngx_http_heapprof_module.so
snippet=usr/share/nginx/modules-available/mod-http-heapprof.conf
for f in usr/bin/heapprof usr/include/heapprof.h \
    "usr/lib/$multiarch/libheapprof.so.0" "usr/lib/$multiarch/libheapprof.a" \
    "usr/lib/$multiarch/pkgconfig/heapprof.pc" \
    "usr/lib/$multiarch/cmake/heapprof/heapprofConfig.cmake" \
    "$module" "$snippet" usr/share/doc/heapprof/copyright; do
    [[ -e $root/$f ]] || fail "$deb has no /$f"
done
echo "check_deb: files in place"
if readelf -d "$root/$module" | grep -q 'R.*PATH'; then
    fail "/$module has a RUNPATH: $(readelf -d "$root/$module" | grep PATH)"
fi
[[ $(cat "$root/$snippet") == "load_module /$module;" ]] ||
    fail "/$snippet: $(cat "$root/$snippet")"

# The launcher: a program that allocates, reads its own heap profile over
# HTTP and exits.
port=$(free_port)
cat >"$work/alloc.py" <<'PY'
import sys, urllib.request
keep = [bytearray(200000) for _ in range(50)]
url = "http://127.0.0.1:%s/debug/pprof/heap" % sys.argv[1]
for _ in range(200):
    try:
        body = urllib.request.urlopen(url, timeout=5).read()
        break
    except OSError:
        import time; time.sleep(0.1)
else:
    sys.exit("no listener on " + url)
open(sys.argv[2], "wb").write(body)
PY
"$root/usr/bin/heapprof" --version
"$root/usr/bin/heapprof" run --rate 1 --http "127.0.0.1:$port" -- \
    /usr/bin/python3.11 "$work/alloc.py" "$port" "$work/python-heap.pb.gz" ||
    fail "heapprof run python3.11 failed"
go tool pprof -top -unit=B "$work/python-heap.pb.gz" >"$work/python-top.txt" 2>&1
top_has "$work/python-top.txt" '^_?Py' ||
    { cat "$work/python-top.txt"; fail "no CPython function holds memory"; }
echo "check_deb: /usr/bin/heapprof run profiled python3.11:"
grep -m3 ' _\?Py' "$work/python-top.txt"

# nginx, with the module loaded by the package's snippet.
[[ -x /usr/sbin/nginx ]] || fail "/usr/sbin/nginx missing (scripts/deps.sh)"
port=$(free_port)
mkdir -p "$work/nginx/logs"
sed "s|/usr/lib/|$root/usr/lib/|" "$root/$snippet" >"$work/nginx/module.conf"
cat >"$work/nginx/nginx.conf" <<NGX
include $work/nginx/module.conf;
daemon off;
master_process off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log info;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $work/nginx/tmp;
    proxy_temp_path $work/nginx/tmp;
    fastcgi_temp_path $work/nginx/tmp;
    uwsgi_temp_path $work/nginx/tmp;
    scgi_temp_path $work/nginx/tmp;
    heapprof_rate 1;
    server {
        listen 127.0.0.1:$port;
        location / { return 200 "hello\n"; }
        location /debug/pprof/ { heapprof; }
    }
}
NGX
ngx=(/usr/sbin/nginx -p "$work/nginx/" -c "$work/nginx/nginx.conf")
export LD_LIBRARY_PATH=$root/usr/lib/$multiarch
"${ngx[@]}" -t 2>"$work/nginx/t.log" || { cat "$work/nginx/t.log"; fail "nginx -t"; }
env -u LD_PRELOAD "${ngx[@]}" &
pid=$!
trap 'kill -QUIT $pid 2>/dev/null || true' EXIT
fetch_when_up "http://127.0.0.1:$port/" "$work/nginx/hello"
for i in $(seq 20); do curl -sf -o /dev/null "http://127.0.0.1:$port/$i"; done
fetch_when_up "http://127.0.0.1:$port/debug/pprof/heap" "$work/nginx-heap.pb.gz"
kill -QUIT $pid
wait $pid || fail "nginx exited with $?"
trap - EXIT
go tool pprof -top -unit=B "$work/nginx-heap.pb.gz" >"$work/nginx-top.txt" 2>&1
top_has "$work/nginx-top.txt" '^ngx_' ||
    { cat "$work/nginx-top.txt"; fail "no ngx_ function holds memory"; }
echo "check_deb: nginx loaded the packaged module:"
grep -m3 ' ngx_' "$work/nginx-top.txt"
echo "check_deb: ok"
