#!/usr/bin/env bash
# The C sources and public headers follow .clang-format: clang-format would
# change nothing. Prints the first differences and fails otherwise; exits
# 77 (skipped) where clang-format is not installed.
#   tests/arch/check_format.sh SOURCE_DIR
# To fix: clang-format -i src/*.[ch] include/*.h
set -euo pipefail
cd "$1"
command -v clang-format >/dev/null || {
    echo "clang-format not installed: skipped"
    exit 77
}
files=(src/*.c src/*.h include/*.h)
if ! clang-format --dry-run --Werror "${files[@]}" 2>"${TMPDIR:-/tmp}/hp-format.$$"; then
    head -n 40 "${TMPDIR:-/tmp}/hp-format.$$"
    rm -f "${TMPDIR:-/tmp}/hp-format.$$"
    echo "FAIL: not formatted as .clang-format says; run:" \
        "clang-format -i src/*.[ch] include/*.h"
    exit 1
fi
rm -f "${TMPDIR:-/tmp}/hp-format.$$"
echo "ok: ${#files[@]} files formatted as .clang-format says"
