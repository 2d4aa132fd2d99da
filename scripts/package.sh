#!/usr/bin/env bash
# Builds the Debian package dist/heapprof_<version>_<arch>.deb:
# libheapprof (.so, .a), heapprof.h & co, heapprof.pc, the CMake package,
# /usr/bin/heapprof, the nginx module in /usr/lib/nginx/modules/ and its
# load_module snippet in /usr/share/nginx/modules-available/.
# Configures BUILD_DIR (default build-pkg/) for the /usr prefix (libraries
# in the multiarch directory), packs it with CPack (cmake/packaging.cmake),
# then checks it: the dlopen'ed libraries of src/lazy_deps.c are in
# Depends (dpkg-shlibdeps cannot see them), and lintian reports no error.
# usage: scripts/package.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build-pkg}

die() {
    echo "package.sh: $*" >&2
    exit 1
}

mkdir -p "$build_dir"
HEAPPROF_JOBS=${HEAPPROF_JOBS:-2} scripts/build.sh "$build_dir" \
    -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DHEAPPROF_BUILD_TESTS=OFF -DHEAPPROF_WERROR=ON \
    -DHEAPPROF_NGINX_MODULES_DIR=lib/nginx/modules >"$build_dir/build.log" 2>&1 ||
    { tail -30 "$build_dir/build.log"; die "build failed (log: $build_dir/build.log)"; }

version=$(sed -n 's/^CMAKE_PROJECT_VERSION:[A-Z]*=//p' "$build_dir/CMakeCache.txt")
arch=$(dpkg --print-architecture)
deb=dist/heapprof_${version}_${arch}.deb
rm -f "$deb"
(cd "$build_dir" && cpack -G DEB) >"$build_dir/cpack.log" 2>&1 ||
    { cat "$build_dir/cpack.log"; die "cpack failed"; }
[[ -f $deb ]] || die "cpack did not write $deb (log: $build_dir/cpack.log)"

# Each library src/lazy_deps.c dlopens must be a dependency.
depends=$(dpkg-deb -f "$deb" Depends)
for so in $(grep -o '"lib[^"]*\.so\.[0-9]*"' src/lazy_deps.c | tr -d '"'); do
    pkg=$(dpkg -S "*/$so" 2>/dev/null | grep ":$arch: " | head -1 | cut -d: -f1)
    [[ -n $pkg ]] || die "no installed package ships $so (scripts/deps.sh)"
    [[ ", $depends," == *", $pkg "* || ", $depends," == *", $pkg,"* ]] ||
        die "$so ($pkg) is dlopen'ed but not in Depends: $depends"
done

# lintian: errors fail the build; warnings are shown.
lintian --fail-on error "$deb" || die "lintian reports errors in $deb"

echo "package.sh: $deb"
dpkg-deb -f "$deb" Package Version Architecture Depends
