#!/usr/bin/python3
"""Blocks that outlive the code that allocated them, end to end (see
unload_workload.c): after the plugin is dlclose'd and unmapped, the heap
profile must still name plugin_alloc and plugin_run, under a mapping of the
plugin's file with a build id, with exact in-use values at HEAPPROF_RATE=1.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pprof_tool  # noqa: E402


def main():
    ap = pprof_tool.workload_parser()
    ap.add_argument("--plugin", required=True)
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    truth = pprof_tool.run_workload([args.workload, args.workdir, args.plugin],
                                    args.rate, args.preload)
    prof = pprof_tool.read_raw(os.path.join(args.workdir, "unload.pb.gz"))
    objs = prof.types.index("inuse_objects/count")
    space = prof.types.index("inuse_space/bytes")
    fails = []
    n = b = 0
    plugin_file = os.path.basename(args.plugin)
    for vals, ids in prof.samples:
        if prof.leaf(ids) != "plugin_alloc":
            continue
        n += vals[objs]
        b += vals[space]
        names = [pprof_tool.base_name(x) for x in prof.names(ids)]
        if names[:2] != ["plugin_alloc", "plugin_run"] or "main" not in names:
            fails.append("stack: " + " <- ".join(names))
        mid = prof.loc_mapping.get(ids[0])
        mapping = prof.maps.get(mid)
        if mapping is None or os.path.basename(mapping) != plugin_file:
            fails.append("plugin_alloc's mapping is %r, want %s"
                         % (mapping, plugin_file))
        elif not prof.build_ids.get(mid):
            fails.append("the plugin's mapping has no build id")
    want_n, want_b = truth["plugin_alloc"]
    for what, got, want in (("inuse_objects", n, want_n), ("inuse_space", b, want_b)):
        ok = got == want if args.rate == 1 else abs(got - want) <= 0.1 * want
        print("  plugin_alloc %-14s %10d want %10d %s"
              % (what, got, want, "ok" if ok else "MISMATCH"), flush=True)
        if not ok:
            fails.append("%s %d, want %d" % (what, got, want))
    pprof_tool.end_checks(sorted(set(fails)), "unloaded plugin: ok")


if __name__ == "__main__":
    main()
