#!/usr/bin/env bash
# What a fork costs with HEAPPROF_HTTP: Debian's postgres 15 under
# `pgbench -C -S` (a new backend, i.e. a fork, per transaction), preloaded
# with libheapprof.so without and with HEAPPROF_HTTP, and bare for context.
# Rounds alternate the configurations (order rotated each round); prints
# one row per run and the medians. Run alone or from bench/run.sh
# (PGBENCH=1). Not part of CI: timings are reported, never asserted.
#
#   bench/pgbench_fork.sh LIBHEAPPROF.so        5 rounds x 5 s
#   ROUNDS=9 SECS=8 bench/pgbench_fork.sh LIB    longer
#
# As root, postgres runs as the postgres user. RAW=FILE appends
# "pgbench<TAB>C<TAB>config<TAB>round<TAB>tps" rows for bench/report.py.
set -euo pipefail

LIB=${1:?usage: pgbench_fork.sh LIBHEAPPROF.so}
LIB=$(readlink -f "$LIB")
ROUNDS=${ROUNDS:-5}
SECS=${SECS:-5}
CLIENTS=${CLIENTS:-4}
PG=/usr/lib/postgresql/15/bin
log() { printf '[pgbench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ ! -x "$PG/postgres" ] || [ ! -x "$PG/pgbench" ]; then
    log "skipped: postgresql 15 is not installed (scripts/deps.sh installs it)"
    exit 0
fi
as=()
# setpriv execs (runuser would stay as postgres's parent and keep its signals)
[ "$(id -u)" != 0 ] || as=(setpriv --reuid=postgres --regid=postgres --init-groups)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/heapprof-pgbench.XXXXXX")
chmod 755 "$WORK"
[ ${#as[@]} = 0 ] || chown postgres "$WORK"
DATA=$WORK/data
PGPID=
cleanup() {
    [ -z "$PGPID" ] || kill -INT "$PGPID" 2>/dev/null || true
    [ -z "$PGPID" ] || wait "$PGPID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    local p
    for p in $(shuf -i 20000-32000 -n 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
    return 1
}
PORT=$(free_port)
HTTP_PORT=$(free_port)

"${as[@]}" "$PG/initdb" -D "$DATA" -A trust >"$WORK/initdb.log" 2>&1
pg_start() { # ENV... : postgres in the background, PGPID set, ready
    "${as[@]}" env -u LD_PRELOAD "$@" "$PG/postgres" -D "$DATA" -p "$PORT" \
        -k "$WORK" -c listen_addresses=127.0.0.1 -c max_connections=50 \
        >>"$WORK/pg.log" 2>&1 &
    PGPID=$!
    local i
    for ((i = 0; i < 100; i++)); do
        "$PG/pg_isready" -q -h "$WORK" -p "$PORT" && return 0
        sleep 0.1
    done
    log "postgres did not start: $(tail -3 "$WORK/pg.log")"
    return 1
}
pg_stop() {
    kill -INT "$PGPID" 2>/dev/null || true
    wait "$PGPID" 2>/dev/null || true
    PGPID=
}

pg_start
"${as[@]}" "$PG/pgbench" -i -s 2 -h "$WORK" -p "$PORT" postgres >"$WORK/init.log" 2>&1
pg_stop

CONFIGS=(bare preload http)
env_of() {
    case $1 in
    bare) echo "HEAPPROF_UNUSED=1" ;;
    preload) echo "LD_PRELOAD=$LIB" ;;
    http) echo "LD_PRELOAD=$LIB HEAPPROF_HTTP=127.0.0.1:$HTTP_PORT" ;;
    esac
}
declare -A TPS
n=${#CONFIGS[@]}
log "$ROUNDS rounds x ${CONFIGS[*]}, pgbench -C -S -c $CLIENTS -T $SECS"
for ((round = 0; round < ROUNDS; round++)); do
    for ((k = 0; k < n; k++)); do
        cfg=${CONFIGS[$(((k + round) % n))]}
        # shellcheck disable=SC2046
        pg_start $(env_of "$cfg")
        tps=$("${as[@]}" "$PG/pgbench" -C -S -c "$CLIENTS" -T "$SECS" \
            -h "$WORK" -p "$PORT" postgres 2>/dev/null |
            awk '/^tps = / {print $3; exit}')
        pg_stop
        printf '%s\t%d\t%s\n' "$cfg" "$round" "${tps:-}"
        [ -z "${RAW:-}" ] ||
            printf 'pgbench\tC\t%s\t%d\t%s\n' "$cfg" "$round" "${tps:-}" >>"$RAW"
        TPS[$cfg]="${TPS[$cfg]:-} ${tps:-}"
    done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR]=$1} END {if (NR) print (NR % 2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
for cfg in "${CONFIGS[@]}"; do
    printf 'median %s\t%s connections/s\n' "$cfg" "$(echo "${TPS[$cfg]}" | median)"
done
p=$(echo "${TPS[preload]}" | median)
h=$(echo "${TPS[http]}" | median)
awk -v p="$p" -v h="$h" 'BEGIN { if (p > 0) printf "http / preload\t%.3f\n", h / p }'
