#!/usr/bin/env bash
# When something ahead of heapprof in the lookup order defines malloc (the
# program itself, or a library preloaded before it), heapprof says so in
# one line and the program runs as it would; in the right order, nothing.
#   shadowed_malloc.sh LIBHEAPPROF OWN_MALLOC_PROGRAM [JEMALLOC_FIRST HEAPPROF_FIRST]
# (the last two linked with -ljemalloc and -lheapprof in those orders)
set -euo pipefail
lib=$1 own=$2 link_bad=${3:-} link_good=${4:-}
# The target's jemalloc, from CMake (multiarch directory).
jemalloc=${HP_JEMALLOC:-/usr/lib/$(gcc -print-multiarch)/libjemalloc.so.2}
fails=0

# expect NAME WANT_STDERR_REGEX|'' CMD...
expect() {
    local name=$1 want=$2
    shift 2
    local out err rc=0
    err=$(mktemp)
    out=$("$@" 2>"$err") || rc=$?
    local lines
    lines=$(wc -l <"$err")
    if [[ $rc -ne 0 ]]; then
        echo "FAIL $name: exit $rc"; fails=$((fails + 1))
    elif [[ -z $want && $lines -ne 0 ]]; then
        echo "FAIL $name: want no line on stderr, got:"; cat "$err"; fails=$((fails + 1))
    elif [[ -n $want ]] && ! { [[ $lines -eq 1 ]] && grep -Eq "$want" "$err"; }; then
        echo "FAIL $name: want one line matching '$want', got:"; cat "$err"
        fails=$((fails + 1))
    else
        echo "ok   $name: ${out:+stdout '$out', }$(cat "$err")"
    fi
    rm -f "$err"
}

expect "own malloc" "^heapprof\[[0-9]+\]: malloc here is the program's own, not heapprof's" \
    env LD_PRELOAD="$lib" "$own"
expect "own malloc, rate 1" "^heapprof\[[0-9]+\]: malloc here is the program's" \
    env LD_PRELOAD="$lib" HEAPPROF_RATE=1 "$own"
expect "heapprof alone" "" env LD_PRELOAD="$lib" /bin/true
if [[ -e $jemalloc ]]; then
    expect "jemalloc first" "^heapprof\[[0-9]+\]: malloc here is .*libjemalloc.*comes before heapprof in LD_PRELOAD" \
        env LD_PRELOAD="$jemalloc:$lib" /bin/true
    expect "heapprof first" "" env LD_PRELOAD="$lib:$jemalloc" /bin/true
    # LD_PRELOAD by bare name, found through the library path.
    expect "jemalloc first, by name" "comes before heapprof in LD_PRELOAD" \
        env LD_LIBRARY_PATH="$(dirname "$lib")" \
        LD_PRELOAD="$jemalloc:$(basename "$lib")" /bin/true
fi
if [[ -n $link_bad ]]; then
    expect "linked after jemalloc" "^heapprof\[[0-9]+\]: malloc here is .*libjemalloc.*linked with before heapprof" \
        "$link_bad"
    expect "linked before jemalloc" "" "$link_good"
fi
[[ $fails -eq 0 ]] || exit 1
