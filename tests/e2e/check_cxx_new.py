#!/usr/bin/python3
"""C++ operator new, end to end (see cxx_new.cc): in the profile and in its
debug=1 text form, no sample's leaf is operator new and every sample of a
site has the site's function as its leaf, with exact counts at
HEAPPROF_RATE=1, and the deleted site's objects out of use.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pprof_tool  # noqa: E402

SITES = ("new_site", "new_array_site", "nothrow_site", "aligned_site",
         "deleted_site", "deleted_aligned_site")


def site_of(name):
    """The site a name is (demangled and maybe namespace-qualified, or
    mangled as in the text form's "#" lines), or None."""
    for s in SITES:
        if re.search(r"(^|::|\d)%s(\(|E|$)" % s, pprof_tool.base_name(name)):
            return s
    return None


def check(label, prof, truth, exact, fails):
    alloc = prof.types.index("alloc_objects/count")
    inuse = prof.types.index("inuse_objects/count")
    counts = {s: [0, 0] for s in SITES}
    for vals, ids in prof.samples:
        names = prof.names(ids)
        # The leaf is never operator new (deeper frames may be: a failed
        # new allocates its exception from inside libstdc++'s).
        if names and ("operator new" in names[0] or re.match(r"_Zn[wa]", names[0])):
            fails.append("%s: operator new is the leaf of %s" % (label, " <- ".join(names)))
            continue
        owners = [site_of(n) for n in names if site_of(n)]
        if not owners:
            continue
        if site_of(names[0]) is None:
            fails.append("%s: %s is not the leaf: %s"
                         % (label, owners[0], " <- ".join(names)))
            continue
        counts[owners[0]][0] += vals[alloc]
        counts[owners[0]][1] += vals[inuse]
    for s in SITES:
        n = truth[s][0]
        want_inuse = 0 if s.startswith("deleted_") else n
        got_alloc, got_inuse = counts[s]
        if exact:
            ok = got_alloc == n and got_inuse == want_inuse
        else:
            ok = got_alloc > 0 and (got_inuse > 0) == (want_inuse > 0)
        print("  %-5s %-15s alloc_objects %6d want %6d, inuse_objects %6d want %6d %s"
              % (label, s, got_alloc, n, got_inuse, want_inuse,
                 "ok" if ok else "MISMATCH"), flush=True)
        if not ok:
            fails.append("%s: %s counts %s" % (label, s, counts[s]))


class TextProfile:
    """The parts of a debug=1 text profile check() reads."""
    types = ["inuse_objects/count", "alloc_objects/count"]

    def __init__(self):
        self.samples = []   # ([inuse count, alloc count], [frame index])
        self.frames = []    # frame index -> [names at that address]

    def names(self, ids):
        return [n for i in ids for n in self.frames[i]]


def parse_text(text):
    prof = TextProfile()
    row = re.compile(r"^(\d+): \d+ \[(\d+): \d+\] @((?: 0x[0-9a-f]+)*)$")
    by_pc = {}
    for line in text.splitlines():
        m = row.match(line)
        if m:
            ids = []
            for pc in m.group(3).split():
                by_pc.setdefault(pc, len(prof.frames))
                if by_pc[pc] == len(prof.frames):
                    prof.frames.append([])
                ids.append(by_pc[pc])
            prof.samples.append(([int(m.group(1)), int(m.group(2))], ids))
        elif line.startswith("#\t0x"):
            f = line.split("\t")
            i = by_pc.get(f[1])
            if i is not None and f[2] not in prof.frames[i]:
                prof.frames[i].append(f[2])
    return prof


def main():
    args = pprof_tool.workload_parser().parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    truth = pprof_tool.run_workload([args.workload, args.workdir], args.rate,
                                    args.preload)
    if sorted(truth) != sorted(SITES):
        raise SystemExit("FAIL: workload truth %s" % truth)
    fails = []
    check("proto", pprof_tool.read_raw(os.path.join(args.workdir, "heap.pb.gz")),
          truth, args.rate == 1, fails)
    # The text form as heapprof wrote it (pprof's own symbolization of it
    # loses names in anonymous namespaces): its "#" lines name each frame.
    with open(os.path.join(args.workdir, "heap.txt")) as f:
        check("text", parse_text(f.read()), truth, args.rate == 1, fails)
    pprof_tool.end_checks(fails, "operator new: ok")


if __name__ == "__main__":
    main()
