#!/usr/bin/env bash
# Installs what is missing, builds heapprof and runs every test:
#   1 dependencies            scripts/deps.sh
#   2 build                   build/ with -DHEAPPROF_WERROR=ON
#   3 tests                   ctest in build/ (unit, e2e, ...)
#   4 install and consumers   cmake --install into a temporary prefix; the
#                             header alone with -std=c11 -Wall -Werror;
#                             examples/basic via pkg-config (shared, static)
#                             and via find_package(heapprof)
#   5 ASan + UBSan            build-asan/, ctest -L unit
#   6 TSan                    build-tsan/, ctest -L concurrency
#   7 Debian package          scripts/package.sh (build-pkg/, lintian),
#                             then tests/package/check_deb.sh on the .deb
#   8 64-bit ARM              scripts/cross.sh aarch64 (build-aarch64/,
#                             thread-free unit tests under qemu-user)
# Fails fast at the first error. .ci/run calls this script with no
# arguments (everything); for development, name the steps to run:
#   scripts/test.sh install asan     (deps build ctest install asan tsan
#                                     package cross)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${HEAPPROF_JOBS:-2}
t0=$SECONDS

tmp=$(mktemp -d "${TMPDIR:-/tmp}/heapprof-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export PPROF_TMPDIR=$tmp/pprof
mkdir -p "$PPROF_TMPDIR"

steps=("$@")
want() {
    ((${#steps[@]} == 0)) && return 0
    local s
    for s in "${steps[@]}"; do [[ $s == "$1" ]] && return 0; done
    return 1
}

section() {
    printf '\n==================== %s  [%ds]\n' "$*" $((SECONDS - t0))
}

die() {
    echo "test.sh: FAILED: $*" >&2
    exit 1
}

if want deps; then
    section "1/8 dependencies"
    scripts/deps.sh
fi

if want build; then
    section "2/8 build: build/ (-DHEAPPROF_WERROR=ON)"
    scripts/build.sh build -DHEAPPROF_WERROR=ON
fi

if want ctest; then
    section "3/8 tests: ctest build/"
    ctest --test-dir build --output-on-failure -j"$jobs"
fi

if want install; then
    section "4/8 install and consumers"
    prefix=$tmp/prefix
    cmake --install build --prefix "$prefix" >"$tmp/install.log"
    for f in include/heapprof.h lib/libheapprof.so lib/libheapprof.a \
        lib/pkgconfig/heapprof.pc lib/cmake/heapprof/heapprofConfig.cmake; do
        [[ -e $prefix/$f ]] || die "cmake --install did not install $f"
        echo "installed: $f"
    done

    # The public header on its own, strict C11.
    printf '%s\n' '#include <heapprof.h>' '' 'int' 'main(void)' '{' \
        '    return heapprof_version() == HEAPPROF_VERSION_NUMBER ? 0 : 1;' \
        '}' >"$tmp/header_only.c"
    gcc -std=c11 -Wall -Werror -I"$prefix/include" -c "$tmp/header_only.c" \
        -o "$tmp/header_only.o"
    gcc "$tmp/header_only.o" -L"$prefix/lib" -lheapprof \
        -Wl,-rpath,"$prefix/lib" -o "$tmp/header_only"
    "$tmp/header_only" || die "heapprof_version() differs from the header"
    echo "ok: heapprof.h compiles alone with gcc -std=c11 -Wall -Werror"

    # examples/basic through pkg-config, against the shared and static library.
    export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
    cflags=$(pkg-config --cflags heapprof)
    libs=$(pkg-config --libs heapprof)
    echo "pkg-config heapprof: $cflags $libs"
    # shellcheck disable=SC2086 # word splitting of pkg-config output is wanted
    gcc -std=c11 -Wall -Werror $cflags examples/basic/basic.c $libs \
        -Wl,-rpath,"$prefix/lib" -o "$tmp/basic-pkgconfig"
    tests/e2e/check_example.sh "$tmp/basic-pkgconfig" "$tmp/out-pkgconfig" \
        cache_requests
    static_libs=$(pkg-config --static --libs-only-l heapprof |
        sed 's/-lheapprof\b//')
    # shellcheck disable=SC2086
    gcc -std=c11 -Wall -Werror $cflags examples/basic/basic.c \
        "$prefix/lib/libheapprof.a" $static_libs -o "$tmp/basic-static"
    tests/e2e/check_example.sh "$tmp/basic-static" "$tmp/out-static" \
        cache_requests

    # examples/basic as its own CMake project: find_package(heapprof).
    cmake -S examples/basic -B "$tmp/basic-cmake" \
        -DCMAKE_PREFIX_PATH="$prefix" >"$tmp/basic-cmake.log" ||
        { cat "$tmp/basic-cmake.log"; die "find_package(heapprof) failed"; }
    cmake --build "$tmp/basic-cmake" -j"$jobs"
    tests/e2e/check_example.sh "$tmp/basic-cmake/basic" "$tmp/out-cmake" \
        cache_requests
fi

if want asan; then
    section "5/8 ASan+UBSan: build-asan/, ctest -L unit"
    scripts/build.sh build-asan -DHEAPPROF_SANITIZE=address,undefined
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
        ctest --test-dir build-asan -L unit --output-on-failure -j"$jobs"
fi

if want tsan; then
    section "6/8 TSan: build-tsan/, ctest -L concurrency"
    scripts/build.sh build-tsan -DHEAPPROF_SANITIZE=thread
    TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1} \
        ctest --test-dir build-tsan -L concurrency --no-tests=ignore \
        --output-on-failure -j"$jobs"
fi

if want package; then
    section "7/8 Debian package: scripts/package.sh, tests/package/check_deb.sh"
    scripts/package.sh
    version=$(sed -n 's/^CMAKE_PROJECT_VERSION:[A-Z]*=//p' build-pkg/CMakeCache.txt)
    tests/package/check_deb.sh \
        "dist/heapprof_${version}_$(dpkg --print-architecture).deb" "$tmp/deb"
fi

if want cross; then
    section "8/8 64-bit ARM: scripts/cross.sh aarch64"
    scripts/cross.sh aarch64
fi

section "done: ${steps[*]:-all steps} passed"
