#!/usr/bin/python3
"""Frame rules shared by a fork tree (see fork_unwind.c), at
HEAPPROF_RATE=1: every child's profile holds its PER_CHILD blocks under
child_site <- handle_request <- child_main <- main; the first child's new
stacks are walked by libunwind, and on x86-64 the later children, running
the same code, walk none with libunwind (the profile's "heapprof
unwinding" comment): the first child taught the whole tree."""

import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pprof_tool  # noqa: E402

CHAIN = ["child_site", "handle_request", "child_main", "main"]


def child_profile(path, want, fails):
    """The child's libunwind walk count; checks its stacks and counts."""
    prof = pprof_tool.read_raw(path)
    objects = prof.types.index("inuse_objects/count")
    got = 0
    for vals, ids in prof.samples:
        names = [pprof_tool.base_name(n) for n in prof.names(ids)]
        if names[:1] != ["child_site"]:
            continue
        got += vals[objects]
        if names[:len(CHAIN)] != CHAIN:
            fails.append("%s: wrong stack: %s" % (path, " <- ".join(names)))
    if got != want:
        fails.append("%s: %d objects at child_site, want %d" % (path, got, want))
    walked = pprof_tool.libunwind_walks(prof)
    if walked is None:
        fails.append("%s: no 'heapprof unwinding' comment" % path)
    return walked


def main():
    ap = pprof_tool.workload_parser()
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    for f in os.listdir(args.workdir):
        os.unlink(os.path.join(args.workdir, f))
    truth = pprof_tool.run_workload([args.workload, args.workdir], args.rate,
                                    args.preload)
    want = [truth["child%d" % n][0] for n in range(len(truth))]
    fails, walked = [], []
    for n, count in enumerate(want):
        w = child_profile(os.path.join(args.workdir, "child-%d.pb.gz" % n),
                          count, fails)
        walked.append(w)
        print("  child %d: %d blocks, libunwind walked %s stacks" % (n, count, w))
    if not want:
        fails.append("the workload reported no children")
    elif platform.machine() == "x86_64" and None not in walked:
        if walked[0] < 1:
            fails.append("the first child walked no new stack with libunwind")
        if any(w != 0 for w in walked[1:]):
            fails.append("later children walked with libunwind: %s" % walked[1:])
    pprof_tool.end_checks(fails, "fork tree unwinding: ok")


if __name__ == "__main__":
    main()
