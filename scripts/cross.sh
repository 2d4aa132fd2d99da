#!/usr/bin/env bash
# Cross-builds heapprof for 64-bit ARM and runs what qemu-user can run:
#   1 Debian's cross toolchain and the arm64 multiarch libraries
#     (dpkg --add-architecture arm64 once, then scripts/deps.sh PKG:arm64...)
#   2 build-aarch64/ with cmake/aarch64-linux-gnu.cmake and -DHEAPPROF_WERROR=ON:
#     the library, its tests and the examples (not the nginx module, which
#     needs the target's nginx build tree)
#   3 ctest -L unit -LE threads under qemu-aarch64: the unit tests that
#     start no thread (qemu-user 7.2 hangs in a program's first
#     pthread_create, so those cannot run here)
# usage: scripts/cross.sh aarch64 [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

case ${1:-} in
    aarch64) debarch=arm64 triplet=aarch64-linux-gnu ;;
    *) echo "usage: scripts/cross.sh aarch64 [BUILD_DIR]" >&2; exit 2 ;;
esac
build_dir=${2:-build-$1}
jobs=${HEAPPROF_JOBS:-2}
t0=$SECONDS
phase() {
    printf '\n==================== cross %s: %s  [%ds]\n' "$1" "$2" $((SECONDS - t0))
}

phase "$1" "1/3 toolchain and $debarch libraries"
if ! dpkg --print-foreign-architectures | grep -qx "$debarch"; then
    sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    "${sudo[@]}" dpkg --add-architecture "$debarch"
fi
scripts/deps.sh "gcc-$triplet" "g++-$triplet" qemu-user \
    "libc6-dev:$debarch" "libunwind-dev:$debarch" "libprotobuf-c-dev:$debarch" \
    "zlib1g-dev:$debarch" "libdw-dev:$debarch" "libelf-dev:$debarch" \
    "libcmocka-dev:$debarch"
t_deps=$((SECONDS - t0))

phase "$1" "2/3 build: $build_dir/ (-DHEAPPROF_WERROR=ON)"
HEAPPROF_JOBS=$jobs scripts/build.sh "$build_dir" \
    -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/$triplet.cmake" -DHEAPPROF_WERROR=ON
file "$build_dir"/libheapprof.so.0.* | sed 's/, BuildID.*//'
t_build=$((SECONDS - t0 - t_deps))

phase "$1" "3/3 ctest -L unit -LE threads under qemu-$1"
# A test that starts a thread but lacks the "threads" label would spin
# forever under qemu: the whole run is bounded.
timeout 900 ctest --test-dir "$build_dir" -L unit -LE threads \
    --output-on-failure -j"$jobs"
t_test=$((SECONDS - t0 - t_deps - t_build))
phase "$1" "done: packages ${t_deps}s, build ${t_build}s, tests ${t_test}s"
