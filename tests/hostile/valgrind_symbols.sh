#!/usr/bin/env bash
# valgrind reads the symbols of a program linked with libheapprof.a (and of
# libheapprof.so): its leak report names leaky_site and main. Skipped (77)
# without valgrind.
#   valgrind_symbols.sh PROGRAM_LINKED_WITH_LIBHEAPPROF_A LIBHEAPPROF_SO
set -euo pipefail
prog=$1 lib=$2
command -v valgrind >/dev/null || { echo "SKIP: no valgrind"; exit 77; }
out=$(HEAPPROF_RATE=1 valgrind --leak-check=full "$prog" 2>&1)
if grep -q 'by 0x[0-9A-F]*: leaky_site (vg_leak.c' <<<"$out" &&
    grep -q 'by 0x[0-9A-F]*: main (vg_leak.c' <<<"$out"; then
    echo "ok   valgrind names the program's frames"
else
    echo "FAIL: valgrind's leak report lacks leaky_site/main:"
    grep -E 'at 0x|by 0x|ELF section' <<<"$out" | head -10
    exit 1
fi
# The shared library's own symbols: valgrind -v says whether it read them.
if valgrind -v --tool=none env LD_PRELOAD="$lib" /bin/true 2>&1 |
    grep -A2 "Reading syms from .*libheapprof" | grep -q "outside all mapped regions"; then
    echo "FAIL: valgrind cannot read libheapprof.so's symbols"
    exit 1
fi
echo "ok   valgrind reads libheapprof.so's symbols"
