#!/usr/bin/env bash
# Benchmarks heapprof against bare glibc and its peers and writes
# docs/PERFORMANCE.md. Not part of CI: timings are reported, never asserted.
#
#   bench/run.sh                 full run (about 10 minutes on 2 vCPUs)
#   PAIRS=3 bench/run.sh         quicker, noisier
#   NO_DOC=1 bench/run.sh        keep docs/PERFORMANCE.md, print the report
#   SCALE=10 PAIRS=1 NO_DOC=1 bench/run.sh   smoke test of the script (1/10 work)
#
# Environment: BENCH_BUILD (build directory, default $TMPDIR/heapprof-bench),
# PAIRS (alternating rounds, default 21: fewer let this VM's two speeds decide), OUT (raw results directory),
# SERVER_ROUNDS (rounds of the real-server runs, default 9), REDIS_N
# (requests per redis-benchmark test, default 100000), WRK_SECONDS (default 5),
# NO_SERVERS=1 (skip redis and nginx), PGBENCH=1 (add the fork-cost section:
# bench/pgbench_fork.sh, postgres under pgbench -C, also runnable alone).
#
# Real servers (skipped when the programs are absent): Debian's redis-server
# bare, preloaded with the forwarding shim, with libheapprof.so and preloaded at HEAPPROF_RATE=0, loaded
# by redis-benchmark; Debian's nginx (master + 2 workers, `return 200`) without
# the module, with it and `heapprof_enabled off`, and with it on at the
# default rate, loaded by wrk. Requests/s and the servers' CPU time per
# request (all threads, from /proc/PID/task/*/schedstat), medians over
# rotated rounds.
#
# Every allocation workload is run in rounds; each round runs every
# configuration once, in an order rotated from round to round, so slow
# drift of the machine hits all configurations alike. Tables give medians
# over the rounds and the median of the per-round ratios, of process CPU
# time (steady on a shared VM) and of wall time.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD:-${TMPDIR:-/tmp}/heapprof-bench}
PAIRS=${PAIRS:-21}
SCALE=${SCALE:-1}
OUT=${OUT:-$BUILD/results}
PY=/usr/bin/python3.11
[ -x "$PY" ] || PY=python3
LIBDIR=/usr/lib/x86_64-linux-gnu
JEMALLOC=$LIBDIR/libjemalloc.so.2
TCMALLOC=$LIBDIR/libtcmalloc.so.4

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ------------------------------------------------------------------ peers
need=()
[ -f "$JEMALLOC" ] || need+=(libjemalloc2)
[ -f "$TCMALLOC" ] || need+=(google-perftools)
command -v heaptrack >/dev/null || need+=(heaptrack)
command -v valgrind >/dev/null || need+=(valgrind)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    sudo_cmd=()
    [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >&2
fi

# ------------------------------------------------------------------ build
log "building (Release) in $BUILD"
cmake -S "$ROOT/bench" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j2 --target heapprof alloc_bench sampled_path_bench export_bench forwarding_shim memory_bench >/dev/null
# The nginx module is part of the heapprof build when nginx-dev is present;
# it is installed (with libheapprof.so next to it) into a temporary prefix.
NGX_MODULE=
if [ "${NO_SERVERS:-0}" != 1 ] && [ -x /usr/sbin/nginx ] && command -v wrk >/dev/null &&
    cmake --build "$BUILD" -j2 --target heapprof_static heapprof_changelog ngx_http_heapprof_module >/dev/null 2>&1; then
    rm -rf "$BUILD/prefix"
    # (cmake --install installs everything: libheapprof.a too, hence heapprof_static.)
    if cmake --install "$BUILD" --prefix "$BUILD/prefix" >"$BUILD/install.log" 2>&1; then
        NGX_MODULE=$(find "$BUILD/prefix" -path '*/nginx/modules/ngx_http_heapprof_module.so' | head -1)
    else
        log "cmake --install failed (see $BUILD/install.log): nginx runs skipped"
    fi
fi
HP=$(readlink -f "$BUILD/heapprof/libheapprof.so")
AB=$BUILD/alloc_bench
SHIM=$BUILD/libforwarding_shim.so
rm -rf "$OUT"
mkdir -p "$OUT"
RAW=$OUT/raw.tsv
: >"$RAW"

# Does Debian's jemalloc have its profiler? (config.prof in its stats.)
je_prof=no
if MALLOC_CONF=stats_print:true LD_PRELOAD=$JEMALLOC /bin/true 2>&1 |
    grep -q 'config.prof: true'; then
    je_prof=yes
fi
echo "jemalloc_prof	$je_prof" >"$OUT/facts.tsv"
echo "scale	$SCALE" >>"$OUT/facts.tsv"

# ------------------------------------------------------------ machine
{
    echo "cpu	$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "nproc	$(nproc)"
    echo "mem	$(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
    echo "kernel	$(uname -r)"
    echo "os	$(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "glibc	$(ldd --version | head -1 | awk '{print $NF}')"
    echo "cc	$(cc --version | head -1)"
    echo "jemalloc	$(dpkg-query -W -f '${Version}' libjemalloc2 2>/dev/null || echo '?')"
    echo "gperftools	$(dpkg-query -W -f '${Version}' libgoogle-perftools4 2>/dev/null || echo '?')"
    echo "heaptrack	$(dpkg-query -W -f '${Version}' heaptrack 2>/dev/null || echo '?')"
    echo "heapprof_commit	$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src include 2>/dev/null || echo ' (with uncommitted changes in src/)')"
    echo "load_start	$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "date	$(date -u +%Y-%m-%dT%H:%MZ)"
    echo "pairs	$PAIRS"
} >>"$OUT/facts.tsv"

# ------------------------------------------------------ configurations
# name|env assignments (space separated, no spaces inside values)
CONFIGS=(
    "glibc|"
    "shim|LD_PRELOAD=$SHIM"
    "heapprof|LD_PRELOAD=$HP"
    "heapprof_rate0|LD_PRELOAD=$HP HEAPPROF_RATE=0"
    "jemalloc|LD_PRELOAD=$JEMALLOC"
    "jemalloc_prof|LD_PRELOAD=$JEMALLOC MALLOC_CONF=prof:true,lg_prof_sample:19"
    "heapprof_jemalloc|LD_PRELOAD=$HP:$JEMALLOC"
    "shim_jemalloc|LD_PRELOAD=$SHIM:$JEMALLOC"
    "tcmalloc|LD_PRELOAD=$TCMALLOC TCMALLOC_SAMPLE_PARAMETER=0"
    "tcmalloc_sample|LD_PRELOAD=$TCMALLOC TCMALLOC_SAMPLE_PARAMETER=524288"
)

# run_cfg ENVSTRING CMD... : runs with a clean HEAPPROF_/MALLOC_ env.
run_cfg() {
    local envs=$1
    shift
    # shellcheck disable=SC2086
    env -u LD_PRELOAD -u HEAPPROF_RATE -u HEAPPROF_HTTP -u HEAPPROF_SNAPSHOT_DIR \
        -u MALLOC_CONF -u TCMALLOC_SAMPLE_PARAMETER $envs "$@"
}

# alloc_bench's line: "WORKLOAD wall-seconds cpu-seconds minor-faults".
AB_LINE='[0-9.]+ [0-9.]+ [0-9]+$'
workload_seconds() { # ENV WORKLOAD [OPS] -> "wall<TAB>cpu<TAB>faults" on stdout
    local out
    out=$(run_cfg "$1" "$AB" "$2" ${3:-} 2>/dev/null | grep -E "^$2 $AB_LINE" | tail -1)
    out=${out#* }
    echo "${out// /$'\t'}"
}

# ----------------------------------------------- allocation workloads
for w in small mixed mixed2; do
    log "workload $w: $PAIRS rounds x ${#CONFIGS[@]} configurations"
    n=${#CONFIGS[@]}
    for ((round = 0; round < PAIRS; round++)); do
        for ((k = 0; k < n; k++)); do
            c=${CONFIGS[$(((k + round) % n))]}
            name=${c%%|*}
            envs=${c#*|}
            case $w in small) ops=$((20000000 / SCALE)) ;; *) ops=$((1500000 / SCALE)) ;; esac
            s=$(workload_seconds "$envs" "$w" "$ops")
            printf 'alloc\t%s\t%s\t%d\t%s\n' "$w" "$name" "$round" "$s" >>"$RAW"
        done
    done
done

# ------------------------------------------------------------ rate sweep
# mixed at several sampling rates: what a rate costs, and from the sample
# counts what one sample costs in place (its CPU over rate 0, per sample).
RATES=(0 65536 131072 262144 524288 1048576 2097152)
SWEEP_ROUNDS=$((PAIRS / 2 + 1))
log "rate sweep: mixed, $SWEEP_ROUNDS rounds x $((${#RATES[@]} + 1)) configurations"
SWEEP=("glibc|")
for r in "${RATES[@]}"; do SWEEP+=("$r|LD_PRELOAD=$HP HEAPPROF_RATE=$r"); done
n=${#SWEEP[@]}
ops=$((1500000 / SCALE))
for ((round = 0; round < SWEEP_ROUNDS; round++)); do
    for ((k = 0; k < n; k++)); do
        c=${SWEEP[$(((k + round) % n))]}
        s=$(workload_seconds "${c#*|}" mixed "$ops")
        printf 'rate\t%s\t%d\t%s\n' "${c%%|*}" "$round" "$s" >>"$RAW"
    done
done
# Samples per run, from one untimed run per rate (the profile's comments).
if command -v go >/dev/null; then
    for r in "${RATES[@]}"; do
        d=$OUT/sweep.$r
        rm -rf "$d"
        mkdir -p "$d"
        run_cfg "LD_PRELOAD=$HP HEAPPROF_RATE=$r HEAPPROF_SNAPSHOT_AT_EXIT=1 HEAPPROF_SNAPSHOT_DIR=$d" \
            "$AB" mixed "$ops" >/dev/null 2>&1 || true
        f=$(find "$d" -name '*.pb.gz' | head -1)
        taken=
        [ -z "$f" ] || taken=$(go tool pprof -comments "$f" 2>/dev/null |
            sed -n 's/^heapprof samples: taken=\([0-9]*\).*/\1/p')
        printf 'rate_samples\t%s\t%s\n' "$r" "${taken:-}" >>"$RAW"
        rm -rf "$d"
    done
fi

# heaptrack is ~3-25x slower: short runs (1/10 of the work), 3 pairs.
HT_DIR=$OUT/heaptrack
mkdir -p "$HT_DIR"
for w in small mixed mixed2; do
    case $w in small) ops=$((2000000 / SCALE)) ;; *) ops=$((150000 / SCALE)) ;; esac
    log "heaptrack, workload $w (short: $ops operations)"
    for ((round = 0; round < 3; round++)); do
        s=$(workload_seconds "" "$w" "$ops")
        printf 'heaptrack\t%s\tglibc_short\t%d\t%s\n' "$w" "$round" "$s" >>"$RAW"
        s=$(env -u LD_PRELOAD heaptrack -o "$HT_DIR/ht.$w.$round" "$AB" "$w" "$ops" 2>/dev/null |
            grep -E "^$w $AB_LINE" | tail -1)
        s=${s#* }
        printf 'heaptrack\t%s\theaptrack_short\t%d\t%s\n' "$w" "$round" "${s// /$'\t'}" >>"$RAW"
        rm -f "$HT_DIR"/ht.*
    done
done

# ------------------------------------------------------ sampled path
log "sampled path: $PAIRS pairs of HEAPPROF_RATE=1 / 0 at depth 64, one thread and two"
for ((round = 0; round < PAIRS; round++)); do
    for rate in 1 0; do
        for threads in 1 2; do
            line=$(run_cfg "LD_PRELOAD=$HP HEAPPROF_RATE=$rate" "$BUILD/sampled_path_bench" \
                $((300000 / SCALE)) 58 "$threads")
            key=$rate
            [ "$threads" = 1 ] || key=${rate}x$threads
            printf 'sampled\trate%s\t%s\t%d\t%s\n' "$key" "$key" "$round" "$(echo "$line" | tr ' ' '\t')" >>"$RAW"
        done
    done
done

# ------------------------------------------------------------- export
log "export: 100 000 buckets of depth-32 stacks, 3 runs"
for ((round = 0; round < 3; round++)); do
    run_cfg "" "$BUILD/export_bench" $((100000 / SCALE)) 5 >"$OUT/export.$round.txt"
    awk -v r="$round" '{printf "export\t%s\t-\t%d\t%s\n", $1, r, $2}' "$OUT/export.$round.txt" >>"$RAW"
done

# ------------------------------------------------------------- memory
# Resident set with heapprof minus without, at the same live heap, after
# two profile writes (symbolizer loaded), and heapprof's own metadata
# figures from the profile's comments (budgeted tables + fixed tables).
# 3 rounds per heap size.
MEM_STACKS=512
echo "mem_stacks	$MEM_STACKS" >>"$OUT/facts.tsv"
for mib in 64 512; do
    mib=$((mib / SCALE > 8 ? mib / SCALE : 8))
    # the mix of small blocks, then a heap of 1 MiB blocks (most of them
    # sampled: they live in heapprof's sample range)
    for blk in 0 1048576; do
        key=$mib
        [ "$blk" = 0 ] || key=${mib}x1MiB
        log "memory: ${mib} MiB live heap, blocks ${blk/#0/mixed}, $MEM_STACKS stacks, 3 rounds"
        for ((round = 0; round < 3; round++)); do
            for c in "glibc|" "heapprof|LD_PRELOAD=$HP"; do
                name=${c%%|*}
                envs=${c#*|}
                prof=$OUT/mem.$name.pb.gz
                rm -f "$prof"
                line=$(run_cfg "$envs" "$BUILD/memory_bench" "$mib" "$MEM_STACKS" "$prof" "$blk" | grep '^memory ')
                meta=
                if [ -f "$prof" ] && command -v go >/dev/null; then
                    # the budgeted part plus the resident fixed tables
                    meta=$(go tool pprof -comments "$prof" 2>/dev/null |
                        sed -n 's/^heapprof metadata: \([0-9]*\) bytes.*fixed tables: \([0-9]*\) bytes.*/\1 \2/p' |
                        awk '{print $1 + $2}')
                fi
                heap=$(echo "$line" | sed -n 's/.*heap_bytes=\([0-9]*\).*/\1/p')
                rss=$(echo "$line" | sed -n 's/.*rss_kb=\([0-9]*\).*/\1/p')
                printf 'memory\t%s\t%s\t%d\t%s\t%s\t%s\n' "$key" "$name" "$round" "$heap" "$rss" "${meta:-}" >>"$RAW"
            done
        done
    done
done

# ---------------------------------------------------- process start
log "process start: 200 x /bin/true, $PAIRS pairs"
for ((round = 0; round < PAIRS; round++)); do
    for c in "glibc|" "heapprof|LD_PRELOAD=$HP"; do
        name=${c%%|*}
        envs=${c#*|}
        t0=$(date +%s%N)
        # shellcheck disable=SC2086
        run_cfg "$envs" sh -c 'i=0; while [ $i -lt 200 ]; do /bin/true; i=$((i+1)); done'
        t1=$(date +%s%N)
        printf 'start\t-\t%s\t%d\t%s\n' "$name" "$round" "$(((t1 - t0) / 1000))" >>"$RAW"
    done
done

# ----------------------------------------------------------- callgrind
# Instructions per malloc/free pair of the small loop: the difference of
# two loop lengths, so start-up and exit cancel out. LD_PRELOAD goes on
# valgrind itself, which passes it to the client.
log "callgrind: instructions per malloc/free pair (small loop)"
cg_total() { # ENV OPS
    local f=$OUT/cg.out
    # shellcheck disable=SC2086
    env -u LD_PRELOAD -u HEAPPROF_RATE -u MALLOC_CONF $1 \
        valgrind --tool=callgrind --callgrind-out-file="$f" "$AB" small "$2" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
    rm -f "$f"
}
for c in "glibc|" "shim|LD_PRELOAD=$SHIM" "heapprof|LD_PRELOAD=$HP" "heapprof_rate0|LD_PRELOAD=$HP HEAPPROF_RATE=0" \
    "jemalloc|LD_PRELOAD=$JEMALLOC" "jemalloc_prof|LD_PRELOAD=$JEMALLOC MALLOC_CONF=prof:true,lg_prof_sample:19" \
    "shim_jemalloc|LD_PRELOAD=$SHIM:$JEMALLOC" "heapprof_jemalloc|LD_PRELOAD=$HP:$JEMALLOC"; do
    name=${c%%|*}
    envs=${c#*|}
    a=$(cg_total "$envs" $((200000 / SCALE)))
    b=$(cg_total "$envs" $((1200000 / SCALE)))
    printf 'callgrind\tsmall\t%s\t0\t%s\n' "$name" \
        "$(echo "$a $b $SCALE" | awk '{printf "%.1f", ($2 - $1) / (1000000 / $3)}')" >>"$RAW"
done

# ------------------------------------------- one sample in place, counted
log "callgrind: what one sample costs in place (bench/sample_cost.py)"
RAW=$RAW "$PY" "$ROOT/bench/sample_cost.py" "$BUILD" $((1500000 / SCALE)) \
    >"$OUT/sample_cost.txt" || log "sample_cost: failed"

# --------------------------------------------------- where time goes
log "perf profile of heapprof on the mixed workload"
if command -v perf >/dev/null; then
    run_cfg "" perf record -q -e cpu-clock -F 2000 -o "$OUT/perf.data" \
        env LD_PRELOAD="$HP" "$AB" mixed $((1500000 / SCALE)) >/dev/null 2>&1 || true
    perf report -i "$OUT/perf.data" --no-children --sort dso,sym -g none 2>/dev/null |
        grep -v '^#' | grep '%' | head -20 >"$OUT/perf_mixed.txt" || true
    rm -f "$OUT/perf.data"
fi

# ------------------------------------------------------- real servers
SERVER_ROUNDS=${SERVER_ROUNDS:-9}
REDIS_N=${REDIS_N:-$((100000 / SCALE))}
WRK_SECONDS=${WRK_SECONDS:-5}
echo "server_rounds	$SERVER_ROUNDS" >>"$OUT/facts.tsv"
echo "redis_n	$REDIS_N" >>"$OUT/facts.tsv"
echo "wrk_seconds	$WRK_SECONDS" >>"$OUT/facts.tsv"

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() { # PORT [PID]: until something accepts on 127.0.0.1:PORT
    local i
    for ((i = 0; i < 100; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        [ -z "${2:-}" ] || kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# CPU time (ns) of processes so far, all their threads: schedstat is in ns,
# unlike the 10 ms ticks of /proc/PID/stat.
proc_cpu_ns() { # PID...
    local p t sum=0
    for p in "$@"; do
        for t in /proc/"$p"/task/*/schedstat; do
            [ -r "$t" ] && sum=$((sum + $(cut -d' ' -f1 "$t" 2>/dev/null || echo 0)))
        done
    done
    echo "$sum"
}

REDIS_CONFIGS=(
    "bare|"
    "shim|LD_PRELOAD=$SHIM"
    "heapprof|LD_PRELOAD=$HP"
    "heapprof_rate0|LD_PRELOAD=$HP HEAPPROF_RATE=0"
)
if [ "${NO_SERVERS:-0}" != 1 ] && command -v redis-server >/dev/null &&
    command -v redis-benchmark >/dev/null; then
    echo "redis	$(redis-server --version | sed 's/^Redis server //')" >>"$OUT/facts.tsv"
    log "redis: $SERVER_ROUNDS rounds x ${#REDIS_CONFIGS[@]} configurations, -n $REDIS_N -c 32"
    n=${#REDIS_CONFIGS[@]}
    for ((round = 0; round < SERVER_ROUNDS; round++)); do
        for ((k = 0; k < n; k++)); do
            c=${REDIS_CONFIGS[$(((k + round) % n))]}
            name=${c%%|*}
            envs=${c#*|}
            port=$(free_port)
            # Not through run_cfg: a backgrounded function is a subshell, and
            # $! must be redis-server itself (env execs it) to stop it by PID.
            # shellcheck disable=SC2086
            env -u LD_PRELOAD -u HEAPPROF_RATE -u HEAPPROF_HTTP -u HEAPPROF_SNAPSHOT_DIR \
                -u MALLOC_CONF -u TCMALLOC_SAMPLE_PARAMETER $envs \
                redis-server --port "$port" --bind 127.0.0.1 --save '' \
                --appendonly no --daemonize no --dir "$OUT" >"$OUT/redis.log" 2>&1 &
            rpid=$!
            if wait_port "$port" "$rpid"; then
                # Server CPU per request: steadier than requests/s on a VM
                # whose client shares the two cores.
                c0=$(proc_cpu_ns "$rpid")
                run_cfg "" redis-benchmark -p "$port" -q -n "$REDIS_N" -c 32 \
                    -t set,get,lpush,lrange_100 --csv 2>/dev/null |
                    awk -F'","' -v c="$name" -v r="$round" '
                        /needed/ || !/^"[A-Z]/ { next }
                        { t = substr($1, 2); sub(/ .*/, "", t); printf "redis\t%s\t%s\t%d\t%s\n", t, c, r, $2 }' \
                        >>"$RAW" || true
                c1=$(proc_cpu_ns "$rpid")
                printf 'srvcpu\tredis\t%s\t%d\t%s\n' "$name" "$round" \
                    "$(((c1 - c0) / (4 * REDIS_N)))" >>"$RAW"
            else
                log "redis-server ($name) did not start: $(tail -1 "$OUT/redis.log")"
            fi
            kill "$rpid" 2>/dev/null || true
            wait "$rpid" 2>/dev/null || true
        done
    done
else
    if [ "${NO_SERVERS:-0}" = 1 ]; then log "redis: skipped (NO_SERVERS=1)"
    else log "redis: skipped (redis-server / redis-benchmark not installed)"; fi
fi

# nginx: the configuration of tests/nginx/run_nginx.py, `return 200`.
NGX_WORK=$OUT/nginx
ngx_conf() { # CONFIG PORT -> nginx.conf on stdout
    local load="" extra="" loc=""
    case $1 in
    module_off) load="load_module $NGX_MODULE;" extra="heapprof_enabled off;" loc="location /debug/pprof/ { heapprof; }" ;;
    module_on) load="load_module $NGX_MODULE;" loc="location /debug/pprof/ { heapprof; }" ;;
    esac
    local user=""
    [ "$(id -u)" != 0 ] || user="user root;"
    cat <<NGXEOF
$load
$user
worker_processes 2;
daemon on;
master_process on;
pid $NGX_WORK/nginx.pid;
error_log $NGX_WORK/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $NGX_WORK/client_body_temp;
    proxy_temp_path $NGX_WORK/proxy_temp;
    fastcgi_temp_path $NGX_WORK/fastcgi_temp;
    uwsgi_temp_path $NGX_WORK/uwsgi_temp;
    scgi_temp_path $NGX_WORK/scgi_temp;
    $extra
    server {
        listen 127.0.0.1:$2 reuseport;
        location / { return 200 "hello from nginx\n"; }
        $loc
    }
}
NGXEOF
}
ngx_stop() { # kill -QUIT the master, wait until it is gone
    local m i
    m=$(cat "$NGX_WORK/nginx.pid" 2>/dev/null) || return 0
    kill -QUIT "$m" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$m" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$m" 2>/dev/null || true
}
if [ "${NO_SERVERS:-0}" != 1 ] && [ -n "$NGX_MODULE" ]; then
    echo "nginx	$(/usr/sbin/nginx -v 2>&1 | sed 's/^nginx version: //')" >>"$OUT/facts.tsv"
    echo "wrk	$(wrk -v 2>&1 | head -1 | awk '{print $2}')" >>"$OUT/facts.tsv"
    NGX_CONFIGS=(bare module_off module_on)
    n=${#NGX_CONFIGS[@]}
    log "nginx + wrk: $SERVER_ROUNDS rounds x $n configurations, ${WRK_SECONDS}s each"
    for ((round = 0; round < SERVER_ROUNDS; round++)); do
        for ((k = 0; k < n; k++)); do
            name=${NGX_CONFIGS[$(((k + round) % n))]}
            rm -rf "$NGX_WORK"
            mkdir -p "$NGX_WORK"
            port=$(free_port)
            ngx_conf "$name" "$port" >"$NGX_WORK/nginx.conf"
            if run_cfg "" /usr/sbin/nginx -p "$NGX_WORK/" -c "$NGX_WORK/nginx.conf" \
                >/dev/null 2>"$NGX_WORK/start.err" && wait_port "$port"; then
                m=$(cat "$NGX_WORK/nginx.pid" 2>/dev/null || echo self)
                # shellcheck disable=SC2046
                c0=$(proc_cpu_ns "$m" $(pgrep -P "$m"))
                out=$(run_cfg "" wrk -t1 -c32 -d"${WRK_SECONDS}s" "http://127.0.0.1:$port/" 2>/dev/null || true)
                # shellcheck disable=SC2046
                c1=$(proc_cpu_ns "$m" $(pgrep -P "$m"))
                rps=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
                reqs=$(echo "$out" | awk '/requests in/ {print $1}')
                printf 'nginx\treturn200\t%s\t%d\t%s\n' "$name" "$round" "${rps:-}" >>"$RAW"
                [ -z "$reqs" ] || [ "$reqs" = 0 ] ||
                    printf 'srvcpu\tnginx\t%s\t%d\t%s\n' "$name" "$round" \
                        "$(((c1 - c0) / reqs))" >>"$RAW"
            else
                log "nginx ($name) did not start: $(tail -1 "$NGX_WORK/start.err")"
            fi
            ngx_stop
        done
    done
    rm -rf "$NGX_WORK"
else
    if [ "${NO_SERVERS:-0}" = 1 ]; then log "nginx: skipped (NO_SERVERS=1)"
    else log "nginx: skipped (nginx, wrk or the module (nginx-dev) missing)"; fi
fi

# Fork cost (optional): postgres 15 under pgbench -C, a fork per
# connection, preloaded without and with HEAPPROF_HTTP (and bare).
if [ "${PGBENCH:-0}" = 1 ]; then
    log "pgbench -C: bench/pgbench_fork.sh"
    RAW=$RAW ROUNDS=$SERVER_ROUNDS "$ROOT/bench/pgbench_fork.sh" \
        "$HP" >"$OUT/pgbench.txt" || log "pgbench: failed"
fi

echo "load_end	$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/facts.tsv"

# -------------------------------------------------------------- report
if [ "${NO_DOC:-0}" = 1 ]; then
    "$PY" "$ROOT/bench/report.py" "$OUT"
else
    "$PY" "$ROOT/bench/report.py" "$OUT" >"$ROOT/docs/PERFORMANCE.md"
    log "wrote docs/PERFORMANCE.md"
fi
