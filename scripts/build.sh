#!/usr/bin/env bash
# Configures and builds heapprof in a build directory.
# usage: scripts/build.sh [BUILD_DIR] [extra cmake -D options...]
#   scripts/build.sh                     # build/
#   scripts/build.sh build-asan -DHEAPPROF_SANITIZE=address,undefined
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${1:-build}
shift $(($# > 0 ? 1 : 0))
jobs=${HEAPPROF_JOBS:-$(nproc)}

cmake -S . -B "$build_dir" "$@"
cmake --build "$build_dir" -j"$jobs"
