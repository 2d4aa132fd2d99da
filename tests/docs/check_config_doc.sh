#!/usr/bin/env bash
# docs/configuration.md must list exactly the HEAPPROF_* variables that the
# option table in src/config.c reads: a new option without docs, or docs for
# an option that no longer exists, fails this test.
set -euo pipefail
root=${1:?usage: check_config_doc.sh REPO_ROOT}
code=$(grep -o '"HEAPPROF_[A-Z_]*"' "$root/src/config.c" | tr -d '"' |
    grep -v '^HEAPPROF_$' | sort -u)
doc=$(grep -o 'HEAPPROF_[A-Z][A-Z_]*' "$root/docs/configuration.md" | sort -u)
[[ -n $code ]] || { echo "no HEAPPROF_* names found in src/config.c"; exit 1; }
missing=$(comm -23 <(echo "$code") <(echo "$doc"))
stale=$(comm -13 <(echo "$code") <(echo "$doc"))
status=0
if [[ -n $missing ]]; then
    echo "read by src/config.c but not in docs/configuration.md:" $missing
    status=1
fi
if [[ -n $stale ]]; then
    echo "in docs/configuration.md but not read by src/config.c:" $stale
    status=1
fi
[[ $status == 0 ]] && echo "docs/configuration.md lists all $(echo "$code" | wc -l) variables"
exit $status
