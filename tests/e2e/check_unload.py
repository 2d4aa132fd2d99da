#!/usr/bin/python3
"""Blocks that outlive the code that allocated them, end to end (see
unload_workload.c): after the plugin is dlclose'd and unmapped, the heap
profile must still name plugin_alloc and plugin_run, under a mapping of the
plugin's file with a build id, with exact in-use values at HEAPPROF_RATE=1.
"""

import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pprof_tool  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", required=True)
    ap.add_argument("--plugin", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--rate", type=int, required=True)
    ap.add_argument("--preload", help="libheapprof.so")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEAPPROF_")}
    env["HEAPPROF_RATE"] = str(args.rate)
    if args.preload:
        env["LD_PRELOAD"] = args.preload
    p = subprocess.run([args.workload, args.workdir, args.plugin], env=env,
                       timeout=120, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise SystemExit("FAIL: workload exited %d: %s" % (p.returncode, p.stderr))
    truth = {}
    for line in p.stdout.splitlines():
        f = line.split()
        if f and f[0] == "truth":
            truth[f[1]] = (int(f[2]), int(f[3]))

    tool_env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    r = pprof_tool.go_pprof(["-raw"], os.path.join(args.workdir, "unload.pb.gz"),
                            env=tool_env)
    if r.returncode != 0:
        raise SystemExit("FAIL: go tool pprof -raw: " + r.stderr)
    prof = pprof_tool.parse_raw(r.stdout)
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
        mapping = prof.maps.get(prof.loc_mapping.get(ids[0]))
        if mapping is None or os.path.basename(mapping) != plugin_file:
            fails.append("plugin_alloc's mapping is %r, want %s"
                         % (mapping, plugin_file))
    want_n, want_b = truth["plugin_alloc"]
    for what, got, want in (("inuse_objects", n, want_n), ("inuse_space", b, want_b)):
        ok = got == want if args.rate == 1 else abs(got - want) <= 0.1 * want
        print("  plugin_alloc %-14s %10d want %10d %s"
              % (what, got, want, "ok" if ok else "MISMATCH"), flush=True)
        if not ok:
            fails.append("%s %d, want %d" % (what, got, want))
    build_ids = [line for line in r.stdout.splitlines()
                 if plugin_file in line and "Mappings" not in line]
    print("  plugin mapping lines: %d" % len(build_ids))
    for f in sorted(set(fails))[:10]:
        print("FAIL: " + f)
    if fails:
        sys.exit(1)
    print("unloaded plugin: ok")


if __name__ == "__main__":
    main()
