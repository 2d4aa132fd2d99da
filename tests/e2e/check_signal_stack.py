#!/usr/bin/python3
"""Stacks of allocations made in signal handlers, end to end (see
signal_stack.c): every sample of handler_site and altstack_site must read,
leaf first, SITE, its handler, at most one frame for the signal return
trampoline (named __restore_rt when glibc's symbols are installed, else
unnamed), interrupted_work, run_phase, main; with exact counts at
HEAPPROF_RATE=1.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pprof_tool  # noqa: E402

HANDLER = {"handler_site": "on_alarm", "altstack_site": "on_alarm_altstack"}
BELOW = ["interrupted_work", "run_phase", "main"]


def main():
    ap = pprof_tool.workload_parser()
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    truth = pprof_tool.run_workload([args.workload, args.workdir], args.rate,
                                    args.preload)
    prof = pprof_tool.read_raw(os.path.join(args.workdir, "signal.pb.gz"))
    alloc_objects = prof.types.index("alloc_objects/count")
    fails = []
    counts = {site: 0 for site in HANDLER}
    for vals, ids in prof.samples:
        names = [pprof_tool.base_name(n) for n in prof.names(ids)]
        site = names[0] if names else None
        if site not in HANDLER:
            continue
        counts[site] += vals[alloc_objects]
        want_handler = HANDLER[site]
        shown = " <- ".join(names)
        if len(names) < 2 or names[1] != want_handler:
            fails.append("%s: no %s above it: %s" % (site, want_handler, shown))
            continue
        rest = names[2:]
        # The trampoline: one frame, __restore_rt or unnamed ("??").
        if rest and rest[0] not in BELOW:
            if rest[0] not in ("__restore_rt", "??"):
                fails.append("%s: unexpected frame %s below the handler: %s"
                             % (site, rest[0], shown))
                continue
            rest = rest[1:]
        if rest[:len(BELOW)] != BELOW:
            fails.append("%s: the interrupted code is missing: %s" % (site, shown))
    for site, (n, _) in sorted(truth.items()):
        ok = counts[site] == n if args.rate == 1 else counts[site] > 0
        print("  %-14s alloc_objects %6d want %6d %s"
              % (site, counts[site], n, "ok" if ok else "MISMATCH"), flush=True)
        if not ok:
            fails.append("%s: %d objects, want %d" % (site, counts[site], n))
    pprof_tool.end_checks(fails, "signal stacks: ok")


if __name__ == "__main__":
    main()
