#!/usr/bin/env bash
# A set-user-ID program linked with heapprof ignores HEAPPROF_*: the
# environment is its less privileged caller's, and HEAPPROF_SNAPSHOT_DIR
# would otherwise make it write files with the owner's privileges. Runs
# secure_env (linked with libheapprof.a) first as root, where the
# variables work (a snapshot is written), then set-user-ID root as nobody
# (no snapshot, one line on stderr, exit 0). Needs root and a kernel that
# honours set-user-ID here; otherwise skipped (77).
#   secure_env.sh PATH/TO/hostile_secure_env
set -euo pipefail
prog=$1
if [[ $(id -u) -ne 0 ]] || ! command -v setpriv >/dev/null; then
    echo "SKIP: needs root and setpriv"
    exit 77
fi
work=$(mktemp -d /tmp/heapprof-secure.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
cp "$prog" "$work/prog"
chown root:root "$work/prog"
chmod 4755 "$work/prog"
mkdir -m 777 "$work/snap-root" "$work/snap-nobody"

# Control: not secure, the variables apply.
out=$(env -u LD_PRELOAD HEAPPROF_RATE=1 HEAPPROF_SNAPSHOT_DIR="$work/snap-root" \
    HEAPPROF_SNAPSHOT_AT_EXIT=1 "$work/prog" 2>"$work/err-root")
[[ $out == "secure 0" ]] || { echo "FAIL: control run printed '$out'"; exit 1; }
n=$(find "$work/snap-root" -name 'heap-*.pb.gz' | wc -l)
[[ $n -eq 1 ]] || { echo "FAIL: control run wrote $n snapshots"; cat "$work/err-root"; exit 1; }
echo "ok: not set-user-ID, HEAPPROF_SNAPSHOT_DIR honoured ($n snapshot)"

# Set-user-ID root, run by nobody.
set +e
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups \
    env -u LD_PRELOAD HEAPPROF_RATE=1 HEAPPROF_SNAPSHOT_DIR="$work/snap-nobody" \
    HEAPPROF_SNAPSHOT_AT_EXIT=1 "$work/prog" 2>"$work/err-nobody")
rc=$?
set -e
if [[ $out == "secure 0" ]]; then
    echo "SKIP: set-user-ID is not honoured on this machine (nosuid or no_new_privs)"
    exit 77
fi
[[ $rc -eq 0 && $out == "secure 1" ]] || {
    echo "FAIL: set-user-ID run: exit $rc, printed '$out'"; cat "$work/err-nobody"; exit 1; }
n=$(find "$work/snap-nobody" -type f | wc -l)
[[ $n -eq 0 ]] || { echo "FAIL: set-user-ID run wrote $n files"; exit 1; }
lines=$(wc -l <"$work/err-nobody")
grep -q '^heapprof\[[0-9]*\]: .*HEAPPROF_\* environment ignored' "$work/err-nobody" && [[ $lines -eq 1 ]] || {
    echo "FAIL: want one line on stderr, got:"; cat "$work/err-nobody"; exit 1; }
echo "ok: set-user-ID, HEAPPROF_* ignored: $(cat "$work/err-nobody")"
