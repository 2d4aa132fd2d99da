#!/usr/bin/python3
"""Labels on heap samples, end to end: labels_workload allocates from one
site, handle(), under per-thread labels (heapprof_labels_set), frees some
blocks under other labels, and writes its heap profile; the real
`go tool pprof` must show each label set's allocated and in-use bytes
(exact at HEAPPROF_RATE=1, +-10 % at 4096), as sample labels in -raw and
through -tagfocus.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pprof_tool  # noqa: E402
from pprof_tool import fail  # noqa: E402
FAILS = pprof_tool.FAILURES


def close(label, got, want, tol):
    ok = abs(got - want) <= tol * want
    print("  %-40s %12d want %12d %s" % (label, got, want,
                                         "ok" if ok else "MISMATCH"), flush=True)
    if not ok:
        fail("%s: %d, want %d" % (label, got, want))


def main():
    args = pprof_tool.workload_parser().parse_args()
    tol = 0.0 if args.rate == 1 else 0.10
    os.makedirs(args.workdir, exist_ok=True)
    truth = pprof_tool.run_workload([args.workload, args.workdir], args.rate,
                                    args.preload)
    path = os.path.join(args.workdir, "labels.pb.gz")
    prof = pprof_tool.read_raw(path)
    sums = {}
    for (vals, ids), labels in zip(prof.samples, prof.labels):
        if prof.leaf(ids) != "handle":
            continue
        key = ",".join("%s=%s" % (k, labels[k][0])
                       for k in sorted(labels) if k != "bytes") or "-"
        acc = sums.setdefault(key, [0, 0, 0, 0])
        for i, v in enumerate(vals):
            acc[i] += v
    print("  label sets of handle():", sorted(sums), flush=True)
    for key, (alloc, inuse) in sorted(truth.items()):
        got = sums.get(key, [0, 0, 0, 0])
        close("%s alloc_space" % key, got[1], alloc, tol)
        close("%s inuse_space" % key, got[3], inuse, tol)
    extra = set(sums) - set(truth)
    if extra:
        fail("label sets nobody set: %s" % sorted(extra))
    # -tagfocus selects one route (both tenants of /a, and both threads of /b).
    for route, want in (("/a", truth["route=/a"][1] + truth["route=/a,tenant=x"][1]),
                        ("/b", truth["route=/b"][1])):
        t = pprof_tool.go_pprof(["-top", "-tagfocus=route=" + route,
                                 "-sample_index=inuse_space", "-unit=B",
                                 "-nodecount=1000"], path,
                                env=pprof_tool.tool_env())
        flat = {}
        for line in t.stdout.splitlines():
            m = pprof_tool.TOP_ROW_RE.match(line)
            if m:
                flat[m.group(3)] = float(m.group(1))
        close("-tagfocus=route=%s handle inuse" % route, int(flat.get("handle", 0)),
              want, tol)
        if not re.search(r"(?m)^Active filters:\s*$", t.stdout) and \
                "tagfocus" not in t.stdout:
            fail("-tagfocus did not apply: %s" % t.stdout[:300])
    if FAILS:
        raise SystemExit("FAIL: %d check(s) failed" % len(FAILS))
    print("PASS")


if __name__ == "__main__":
    main()
