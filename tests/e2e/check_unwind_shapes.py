#!/usr/bin/python3
"""Stacks through frames of every shape (see unwind_shapes.c), at
HEAPPROF_RATE=1: every sample of every site must read exactly its call
chain down to main (or the thread's start), recursion at the depth it had,
with exact counts; and on x86-64 the frame cache must have served the
walks (the profile's "heapprof unwinding" comment: libunwind walked at most
a tenth of the stacks)."""

import argparse
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pprof_tool  # noqa: E402

PER_SITE = 300
CHAINS = {
    "vla_site": ["run_sites", "main"],
    "aligned_site": ["misalign", "run_sites", "main"],
    "big_site": ["run_sites", "main"],
    "fp_site": ["run_sites", "main"],
}


def expected_recursion():
    """{(depth, bottom frame): count} as unwind_shapes.c recurses."""
    want = {}
    for i in range(PER_SITE):
        for depth, bottom in ((1 + i % 24, "run_sites"), (1 + i % 5, "thread_site")):
            want[(depth, bottom)] = want.get((depth, bottom), 0) + 1
    return want


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
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--rate", type=int, required=True)
    ap.add_argument("--preload", help="libheapprof.so")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    truth = pprof_tool.run_workload([args.workload, args.workdir], args.rate,
                                    args.preload)
    prof = pprof_tool.read_raw(os.path.join(args.workdir, "shapes.pb.gz"))
    objects = prof.types.index("inuse_objects/count")
    fails, counts, depths = [], {}, {}
    for vals, ids in prof.samples:
        names = [pprof_tool.base_name(n) for n in prof.names(ids)]
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
    want_depths = expected_recursion()
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
    for f in fails[:10]:
        print("FAIL: " + f)
    if fails:
        sys.exit(1)
    print("unwind shapes: ok")


if __name__ == "__main__":
    main()
