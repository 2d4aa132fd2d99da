#!/usr/bin/python3
"""Custom-allocator and Boehm GC end-to-end checks, read back with the real
`go tool pprof -top` (flat per site, -unit=B).

Modes:
  pool          pool_workload (linked with libheapprof, hooks with owners
                and bulk free): every site within +-10 % (or exact with
                --exact at HEAPPROF_RATE=1) for the four sample types;
                destroyed pools and reset rounds contribute nothing in use
  boehm-file    boehm_workload under LD_PRELOAD, collecting itself: kept
                sites within +-10 % (exact with --exact), collected garbage
                in use < 10 % of what it allocated, explicitly freed blocks
                gone, the program's finalizers all ran
  boehm-threads the same checks, the work on four threads of the program
                while a fifth collects in a loop
  boehm-http    the same program with HEAPPROF_HTTP: /debug/pprof/heap
                before gc=1 still shows the garbage (the program disabled
                its collector while allocating), after gc=1 it is gone, a
                second gc=1 reclaims the finalized blocks; finalizers ran
  boehm-plain   the program without heapprof: finalizers ran (baseline)
  example-pool  examples/pool: the configuration and the current cache in
                use, the destroyed request pools only allocated; then the
                benchmark of each build (printed, never judged)
  example-boehm examples/boehm, zero-code and explicit (heapprof_gc.h):
                the index and buffers in use, the temporary strings
                reclaimed

ACCURACY: each workload prints the standard deviation of every estimate
(Horvitz-Thompson, Go's un-sampling) at the rate in effect. The sizes and
counts are chosen so that every +-10 % bar is >= 5 sd, so one check fails
correct code with probability < 6e-7 (a run has < 40 checks: < 3e-5). The
checker refuses to judge a design below 4.5 sd.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pprof_tool  # noqa: E402
from pprof_tool import fail, note, free_port  # noqa: E402
failures = pprof_tool.FAILURES

TYPES = ["alloc_objects", "alloc_space", "inuse_objects", "inuse_space"]
TOL = 0.10
MIN_SIGMAS = 4.5
GARBAGE_MAX = 0.10

min_sigma = [float("inf")]


def top_flat(path, index, hide=None):
    flat, p = pprof_tool.top_flat(path, index, pprof_tool.tool_env(), hide)
    if p.returncode != 0:
        raise SystemExit("FAIL: go tool pprof -top %s exited %d: %s"
                         % (path, p.returncode, p.stderr))
    return flat, p.stdout


def read_top(path, hide=None):
    values = {}
    text = ""
    for t in TYPES:
        flat, out = top_flat(path, t, hide)
        values[t] = flat
        text = out
    return values, text


def check_no_own_frames(values, label):
    """The leaf is the program's caller: no heapprof or libgc entry point
    may be a leaf with a value of its own."""
    bad = re.compile(r"^(hp_|heapprof_|GC_|track$|after_alloc|realloc_)")
    for t in TYPES:
        for name, v in values[t].items():
            if v != 0 and bad.match(name):
                fail("%s: %s has flat %s = %.0f: an allocator or heapprof "
                     "frame is a leaf" % (label, name, t, v))


def design_ok(label, site, t, true, sd):
    if true <= 0 or sd <= 0:
        return
    sig = TOL * true / sd
    min_sigma[0] = min(min_sigma[0], sig)
    if sig < MIN_SIGMAS:
        fail("%s: %s %s: the +-10 %% bar is only %.1f sd (design too small)"
             % (label, site, t, sig))


def close(label, site, t, est, true, sd, exact):
    if exact:
        ok = abs(est - true) <= max(1.0, 1e-6 * true)
        what = "exact"
    else:
        design_ok(label, site, t, true, sd)
        ok = abs(est - true) <= TOL * true
        what = "+-10%%, %.1f sd" % (abs(est - true) / sd if sd else 0)
    line = "%s: %-20s %-13s est %12.0f true %12.0f (%s)" % (
        label, site, t, est, true, what)
    if ok:
        note("ok   " + line)
    else:
        fail(line)


def truth_from(stdout, prefix):
    for line in stdout.splitlines():
        if line.startswith(prefix):
            return json.loads(line[len(prefix):])
    return None


# ------------------------------------------------------------------ pool

POOL_GONE = ("site_destroyed", "site_request")


def mode_pool(args):
    os.makedirs(args.workdir, exist_ok=True)
    heap = os.path.join(args.workdir, "heap.pb.gz")
    if os.path.exists(heap):
        os.unlink(heap)
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    p = subprocess.run([args.workload, args.workdir, str(args.scale)],
                       env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=240)
    if p.returncode != 0:
        raise SystemExit("FAIL: workload exited %d\n%s\n%s" % (
            p.returncode, p.stdout[-3000:], p.stderr[-3000:]))
    truth = truth_from(p.stdout, "TRUTH ")
    if truth is None:
        raise SystemExit("FAIL: no TRUTH line:\n" + p.stdout[-3000:])
    values, text = read_top(heap, hide="^pool_(alloc|realloc)$")
    check_no_own_frames(values, "pool")
    for site, tv in sorted(truth["sites"].items()):
        for i, t in enumerate(TYPES):
            est = values[t].get(site, 0.0)
            true = tv[t]
            if true == 0:
                # Destroyed pools and reset rounds: nothing may remain.
                if est != 0:
                    fail("pool: %s %s = %.0f after its pools were "
                         "destroyed or reset (want 0)" % (site, t, est))
                else:
                    note("ok   pool: %-20s %-13s 0 (bulk freed)" % (site, t))
                continue
            close("pool", site, t, est, true, tv["sd"][i], args.exact)
    for site in POOL_GONE:
        if site not in truth["sites"]:
            fail("pool: workload has no %s" % site)


# ----------------------------------------------------------------- boehm

KEPT = ("site_kept", "site_atomic_kept", "site_uncollectable",
        "site_realloc", "site_strdup")
GARBAGE = ("site_garbage", "site_atomic_garbage", "site_finalized")
FREED = ("site_freed",)


def check_boehm(label, values, truth, exact, garbage_sites=GARBAGE,
                check_alloc=True):
    check_no_own_frames(values, label)
    sites = truth["sites"]
    for site in KEPT:
        tv = sites[site]
        for i, t in enumerate(TYPES):
            if not check_alloc and t.startswith("alloc"):
                continue
            close(label, site, t, values[t].get(site, 0.0), tv[t],
                  tv["sd"][i], exact)
    for site in garbage_sites + FREED:
        tv = sites[site]
        if check_alloc:
            for i, t in enumerate(TYPES[:2]):
                close(label, site, t, values[t].get(site, 0.0), tv[t],
                      tv["sd"][i], exact)
        left = values["inuse_space"].get(site, 0.0)
        limit = 0 if site in FREED else GARBAGE_MAX * tv["alloc_space"]
        line = "%s: %-20s inuse_space %.0f of %.0f allocated (limit %.0f)" % (
            label, site, left, tv["alloc_space"], limit)
        if left <= limit:
            note("ok   " + line)
        else:
            fail(line + ": not reclaimed")


def finalized_ok(label, stdout, finalizable):
    m = re.search(r"^FINALIZED (\d+)$", stdout, re.M)
    if not m:
        fail("%s: no FINALIZED line" % label)
        return
    n = int(m.group(1))
    # The collector is conservative: a stale word may keep a few alive.
    line = "%s: %d of %d finalizers ran" % (label, n, finalizable)
    if n >= 0.9 * finalizable:
        note("ok   " + line)
    else:
        fail(line + " (the program's own finalizers must still run)")


def boehm_env(args, extra=None):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if args.preload:
        env["LD_PRELOAD"] = args.preload
    if extra:
        env.update(extra)
    return env


def mode_boehm_file(args):
    os.makedirs(args.workdir, exist_ok=True)
    heap = os.path.join(args.workdir, "heap.pb.gz")
    if os.path.exists(heap):
        os.unlink(heap)
    kind = "threads" if args.mode == "boehm-threads" else "file"
    p = subprocess.run([args.workload, kind, args.workdir, str(args.scale)],
                       env=boehm_env(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=240)
    if p.returncode != 0:
        raise SystemExit("FAIL: workload exited %d\n%s\n%s" % (
            p.returncode, p.stdout[-3000:], p.stderr[-3000:]))
    truth = truth_from(p.stdout, "TRUTH ")
    if truth is None:
        raise SystemExit("FAIL: no TRUTH line:\n" + p.stdout[-3000:])
    finalized_ok(args.mode, p.stdout, truth["finalizable"])
    if not args.preload:
        return
    if not os.path.exists(heap):
        raise SystemExit("FAIL: no profile written:\n" + p.stdout[-3000:])
    values, _ = read_top(heap)
    check_boehm(args.mode, values, truth, args.exact)


def fetch(url, path):
    deadline = time.time() + 30
    while True:
        try:
            with urllib.request.urlopen(url, timeout=60) as r:
                data = r.read()
            break
        except OSError as e:
            if time.time() > deadline:
                raise SystemExit("FAIL: GET %s: %s" % (url, e))
            time.sleep(0.2)
    with open(path, "wb") as f:
        f.write(data)


def mode_boehm_http(args):
    os.makedirs(args.workdir, exist_ok=True)
    port = free_port()
    env = boehm_env(args, {"HEAPPROF_HTTP": "127.0.0.1:%d" % port})
    proc = subprocess.Popen([args.workload, "http", args.workdir,
                             str(args.scale)], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        truth = None
        while truth is None:
            line = proc.stdout.readline()
            if not line:
                raise SystemExit("FAIL: workload ended before READY: %s"
                                 % proc.stderr.read()[-3000:])
            if line.startswith("READY "):
                truth = json.loads(line[len("READY "):])
        base = "http://127.0.0.1:%d/debug/pprof/heap" % port
        before = os.path.join(args.workdir, "before.pb.gz")
        after = os.path.join(args.workdir, "after-gc1.pb.gz")
        after2 = os.path.join(args.workdir, "after-gc2.pb.gz")
        fetch(base, before)
        fetch(base + "?gc=1", after)
        fetch(base + "?gc=1", after2)
        out, err = proc.communicate("\n", timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise SystemExit("FAIL: workload exited %d\n%s\n%s" % (
            proc.returncode, out[-3000:], err[-3000:]))

    # Before gc=1 nothing was collected: the garbage is still in use.
    values, _ = read_top(before)
    for site in GARBAGE:
        left = values["inuse_space"].get(site, 0.0)
        alloc = truth["sites"][site]["alloc_space"]
        line = "boehm-http before gc=1: %-20s inuse_space %.0f of %.0f" % (
            site, left, alloc)
        if left >= 0.5 * alloc:
            note("ok   " + line)
        else:
            fail(line + ": garbage gone before any collection?")
    # After one gc=1: the garbage is gone; the finalizable blocks were only
    # queued for their finalizers (checked after the second).
    values, _ = read_top(after)
    check_boehm("boehm-http gc=1", values, truth, False,
                garbage_sites=("site_garbage", "site_atomic_garbage"))
    values, _ = read_top(after2)
    check_boehm("boehm-http gc=1 twice", values, truth, False,
                check_alloc=False)
    finalized_ok("boehm-http", out, truth["finalizable"])


# -------------------------------------------------------------- examples

def run_ok(cmd, env=None):
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=240)
    if p.returncode != 0:
        raise SystemExit("FAIL: %s exited %d\n%s\n%s" % (
            " ".join(cmd), p.returncode, p.stdout[-3000:], p.stderr[-3000:]))
    note(p.stdout.strip())
    return p


def expect_sites(label, path, held, only_allocated, hide=None):
    values, text = read_top(path, hide)
    for site in held:
        v = values["inuse_space"].get(site, 0.0)
        if v > 0:
            note("ok   %s: %s holds %.0f bytes" % (label, site, v))
        else:
            fail("%s: %s holds no memory:\n%s" % (label, site, text))
    for site in only_allocated:
        alloc = values["alloc_space"].get(site, 0.0)
        left = values["inuse_space"].get(site, 0.0)
        if alloc > 0 and left <= GARBAGE_MAX * alloc:
            note("ok   %s: %s allocated %.0f, %.0f still in use"
                 % (label, site, alloc, left))
        else:
            fail("%s: %s allocated %.0f, %.0f still in use"
                 % (label, site, alloc, left))


def mode_example_pool(args):
    os.makedirs(args.workdir, exist_ok=True)
    heap = os.path.join(args.workdir, "heap.pb.gz")
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    run_ok([args.workload, "run", heap], env)
    expect_sites("example-pool", heap, ("load_config", "cache_response"),
                 ("parse_headers", "build_response"), hide="^pool_")
    # The cost of each hook form, for docs/custom-allocators.md (printed).
    exe_dir = os.path.dirname(args.workload)
    runs = [("pool_example_nohooks", {}, None),
            ("pool_example_weak", {}, None),
            ("pool_example_weak", {}, args.preload),
            ("pool_example", {"HEAPPROF_RATE": "0"}, None),
            ("pool_example", {}, None)]
    for exe, extra, preload in runs:
        e = dict(env)
        e.pop("HEAPPROF_RATE", None)
        e.update(extra)
        if preload:
            e["LD_PRELOAD"] = preload
        run_ok([os.path.join(exe_dir, exe), "bench", "20"], e)


def mode_example_boehm(args):
    os.makedirs(args.workdir, exist_ok=True)
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    for flag in ([], ["--explicit"]):
        heap = os.path.join(args.workdir, "heap%s.pb.gz" % "".join(flag))
        run_ok([args.workload] + flag + [heap], env)
        expect_sites("example-boehm%s" % " ".join([""] + flag), heap,
                     ("index_word", "keep_buffers"), ("tokenize",))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", required=True,
                    choices=["pool", "boehm-file", "boehm-threads",
                             "boehm-http",
                             "boehm-plain", "example-pool",
                             "example-boehm"])
    ap.add_argument("--workload", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--preload")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--exact", action="store_true")
    args = ap.parse_args()
    if args.mode == "pool":
        mode_pool(args)
    elif args.mode in ("boehm-file", "boehm-threads"):
        mode_boehm_file(args)
    elif args.mode == "boehm-http":
        mode_boehm_http(args)
    elif args.mode == "example-pool":
        mode_example_pool(args)
    elif args.mode == "example-boehm":
        mode_example_boehm(args)
    else:
        args.preload = None
        mode_boehm_file(args)
    if min_sigma[0] != float("inf"):
        print("design: every +-10 %% bar is >= %.1f sd" % min_sigma[0])
    if failures:
        print("%d check(s) failed" % len(failures))
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
