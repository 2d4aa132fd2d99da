#!/usr/bin/python3
"""Stacks through frames of every shape (see unwind_shapes.c), at
HEAPPROF_RATE=1: every sample of every site must read exactly its call
chain down to main (or the thread's start), recursion at the depth it had,
with exact counts; and on x86-64 the frame cache must have served the
walks (the profile's "heapprof unwinding" comment: libunwind walked at most
a tenth of the stacks). With --depth N (HEAPPROF_STACK_DEPTH), stacks are
cut to N frames: each must be the first N frames of its chain, and the
cut must not send walks to libunwind."""

import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pprof_tool  # noqa: E402

PER_SITE = 300
DEEP = 40  # deep_site's recursion (unwind_shapes.c)
CHAINS = {
    "vla_site": ["run_sites", "main"],
    "aligned_site": ["misalign", "run_sites", "main"],
    "big_site": ["run_sites", "main"],
    "fp_site": ["run_sites", "main"],
    "deep_site": ["deep_site"] * DEEP + ["deep_thread", "start_thread"],
}


def expected_recursion():
    """{(depth, bottom frame): count} as unwind_shapes.c recurses."""
    want = {}
    for i in range(PER_SITE):
        for depth, bottom in ((1 + i % 24, "run_sites"), (1 + i % 5, "thread_site")):
            want[(depth, bottom)] = want.get((depth, bottom), 0) + 1
    return want


def check_cut_sample(names, depth, fails):
    """A stack cut at depth frames: a prefix of its site's chain."""
    shown = " <- ".join(names)
    site = names[0] if names else None
    if site in CHAINS:
        want = ([site] + CHAINS[site])[:depth]
    elif site == "recurse_site":
        n = 0
        while n < len(names) and names[n] == "recurse_site":
            n += 1
        tails = (["run_sites", "main"], ["thread_site", "start_thread"])
        want = names[:n] + next((t for t in tails if names[n:n + 2] == t[:len(names) - n]), [])
        want = want[:depth]
    else:
        if any(n in CHAINS or n == "recurse_site" for n in names):
            fails.append("a site's frame below another leaf: %s" % shown)
        return None
    if len(names) > depth or names[:len(want)] != want[:len(names)]:
        fails.append("%s: wrong stack cut at %d: %s" % (site, depth, shown))
    return site


def check_sample(names, fails):
    """The site of a sample and, for recursion, its (depth, bottom)."""
    shown = " <- ".join(names)
    site = names[0] if names else None
    if site in CHAINS:
        if names[1:1 + len(CHAINS[site])] != CHAINS[site]:
            fails.append("%s: wrong stack: %s" % (site, shown))
        return site, None
    if site != "recurse_site":
        # The C library's own allocations (a thread's TLS) are not the
        # workload's; a workload frame below another leaf is wrong.
        if any(n in CHAINS or n == "recurse_site" for n in names):
            fails.append("a site's frame below another leaf: %s" % shown)
        return None, None
    n = 0
    while n < len(names) and names[n] == "recurse_site":
        n += 1
    rest = names[n:]
    if rest[:2] == ["run_sites", "main"]:
        return site, (n - 1, "run_sites")
    if rest[:2] == ["thread_site", "start_thread"]:
        return site, (n - 1, "thread_site")
    fails.append("recurse_site: wrong stack below the recursion: %s" % shown)
    return site, None


def main():
    ap = pprof_tool.workload_parser()
    ap.add_argument("--depth", type=int, help="HEAPPROF_STACK_DEPTH")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    extra = {"HEAPPROF_STACK_DEPTH": str(args.depth)} if args.depth else {}
    truth = pprof_tool.run_workload([args.workload, args.workdir], args.rate,
                                    args.preload, extra_env=extra)
    prof = pprof_tool.read_raw(os.path.join(args.workdir, "shapes.pb.gz"))
    objects = prof.types.index("inuse_objects/count")
    fails, counts, depths = [], {}, {}
    for vals, ids in prof.samples:
        names = [pprof_tool.base_name(n) for n in prof.names(ids)]
        if args.depth:
            site, depth = check_cut_sample(names, args.depth, fails), None
        else:
            site, depth = check_sample(names, fails)
        counts[site] = counts.get(site, 0) + vals[objects]
        if depth is not None:
            depths[depth] = depths.get(depth, 0) + vals[objects]
    for site, (n, _) in sorted(truth.items()):
        ok = counts.get(site, 0) == n
        print("  %-13s inuse_objects %5d want %5d %s"
              % (site, counts.get(site, 0), n, "ok" if ok else "MISMATCH"))
        if not ok:
            fails.append("%s: %d objects, want %d" % (site, counts.get(site, 0), n))
    want_depths = {} if args.depth else expected_recursion()
    if depths != want_depths:
        fails.append("recursion depths differ: got %s want %s"
                     % (sorted(depths.items()), sorted(want_depths.items())))
    samples = sum(n for n, _ in truth.values())
    walked = pprof_tool.libunwind_walks(prof)
    print("  libunwind walked %s of %d stacks" % (walked, samples))
    if walked is None:
        fails.append("no 'heapprof unwinding' comment in the profile")
    elif platform.machine() == "x86_64" and walked > samples // 10:
        fails.append("the frame cache served too few walks: libunwind walked "
                     "%d of %d" % (walked, samples))
    pprof_tool.end_checks(fails, "unwind shapes: ok")


if __name__ == "__main__":
    main()
