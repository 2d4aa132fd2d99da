#!/usr/bin/env bash
# Installs the Debian 12 packages heapprof needs to build, test and demo.
# Idempotent: checks each package with dpkg and runs apt-get (update, then
# install) only for what is missing. Root, or sudo when available.
#   scripts/deps.sh              the packages below
#   scripts/deps.sh PKG...       those packages instead (PKG or PKG:ARCH;
#                                scripts/cross.sh passes the arm64 ones)
set -euo pipefail

PACKAGES=(
    # build
    build-essential cmake pkg-config
    libprotobuf-c-dev protobuf-c-compiler libunwind-dev zlib1g-dev
    libdw-dev libelf-dev
    # tests: cmocka, go tool pprof, the checkers (/usr/bin/python3)
    libcmocka-dev golang-go python3
    # integrations, examples and their end-to-end tests
    libmicrohttpd-dev libevent-dev libgc-dev nginx nginx-dev
    redis-server redis-tools clang curl wrk
    # C++ over tcmalloc (e2e.cxx_new.over_tcmalloc); jemalloc comes with redis
    libgoogle-perftools4
    # hostile.valgrind_symbols; arch.format (clang-format)
    valgrind clang-format
    # heapprof attach (and its tests, which also attach to redis-server)
    gdb
    # servers that drop privileges and fork per connection (e2e.tree.*)
    memcached postgresql
    # go tool pprof -http's default /ui/ page runs dot (501 without it)
    graphviz
    # scripts/package.sh checks the .deb
    lintian
)
(($# > 0)) && PACKAGES=("$@")

# On a multiarch machine (dpkg --add-architecture arm64) a name alone
# matches every architecture's package and dpkg-query prints all their
# statuses on one line: ask for the host's (or an Architecture: all)
# package by name, PKG:ARCH, unless the caller named the architecture.
host_arch=$(dpkg --print-architecture)

installed() {
    local names=("$1:$host_arch" "$1:all")
    [[ $1 == *:* ]] && names=("$1")
    local n
    for n in "${names[@]}"; do
        dpkg-query -W -f='${Status}' "$n" 2>/dev/null |
            grep -q '^install ok installed$' && return 0
    done
    return 1
}

missing=()
for p in "${PACKAGES[@]}"; do
    installed "$p" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
    echo "deps: all ${#PACKAGES[@]} packages are installed"
    exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        echo "deps: need root (or sudo) to install: ${missing[*]}" >&2
        exit 1
    fi
fi

echo "deps: installing ${missing[*]}"
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get
     -o DPkg::Lock::Timeout=600 -q)
"${apt[@]}" update
"${apt[@]}" install -y "${missing[@]}"

for p in "${missing[@]}"; do
    installed "$p" || { echo "deps: $p did not install" >&2; exit 1; }
done
echo "deps: done"
