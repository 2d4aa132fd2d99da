#!/usr/bin/python3
"""Run truth_workload (preloaded or linked) and check heapprof's profile
against the workload's own record of what it allocated, using the real
`go tool pprof` to read the profile.

Modes:
  accuracy  every site within +-10 % and the site totals within +-3 % for
            all four sample types (statistical; see ACCURACY below)
  exact     HEAPPROF_RATE=1: every value equals the truth (rounding only)
  off       HEAPPROF_RATE=0: a valid profile with no sample from the sites
  badenv    bad HEAPPROF_* values: exit codes unchanged, one stderr line per
            bad variable naming it, defaults kept (period, stack depth)

Structural checks in every mode with samples: sample types and order,
period, no heapprof frame in any stack (no hp_*/heapprof_* function, no
location in libheapprof.so), the leaf of each site's samples is the site
function itself (not malloc/calloc/realloc/...), stacks reach main, the
deep site's stacks are capped at the stack depth.

ACCURACY: the workload computes, for each value, the standard deviation
of the Horvitz-Thompson estimate (Go's un-sampling) at the rate in effect
(sum over allocations of (1-p)/p and s^2 (1-p)/p, p = 1-exp(-s/rate)) and
the largest weight a single sample carries (1/p objects, s/p bytes). At
HEAPPROF_RATE=4096 every per-site +-10 % bar and every total +-3 % bar is
>= 5.5 sd away (each site has >= 1000 expected samples, except
site_large_live whose 256 KiB blocks are always sampled, exactly), and no
single sample weighs more than 1 % of what it counts in, so the estimate is
a sum of many comparable terms and the normal tail applies: a correct
sampler fails one of the ~36 checks of a run with probability ~1e-6. The
checker prints each error in sd and refuses to run a design weaker than
5 sd or with a sample heavier than 1 % (e.g. after someone shrank the
workload).
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pprof_tool import parse_raw  # noqa: E402
import pprof_tool  # noqa: E402
from pprof_tool import fail, note  # noqa: E402
failures = pprof_tool.FAILURES

TYPES = ["alloc_objects", "alloc_space", "inuse_objects", "inuse_space"]
UNITS = ["count", "bytes", "count", "bytes"]
ALLOCATORS = {
    "malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign",
    "aligned_alloc", "memalign", "valloc", "pvalloc", "__libc_malloc",
    "__libc_calloc", "__libc_realloc", "__libc_memalign", "_int_malloc",
}
DEFAULT_RATE = 524288
DEFAULT_DEPTH = 64
SITE_TOL = 0.10
TOTAL_TOL = 0.03
MIN_SIGMAS = 5.0
MAX_WEIGHT = 0.01


def run(cmd, env=None, check_rc=True):
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if check_rc and p.returncode != 0:
        raise SystemExit("FAIL: %s exited %d\nstdout:\n%s\nstderr:\n%s" % (
            " ".join(cmd), p.returncode, p.stdout[-4000:], p.stderr[-4000:]))
    return p


# ------------------------------------------------------------- pprof

def pprof(args, path, env):
    return run(["go", "tool", "pprof"] + args + [path], env=env)


def read_profile(path, env):
    p = pprof(["-raw", "-symbolize=none"], path, env)
    prof = parse_raw(p.stdout)
    if not prof.types:
        raise SystemExit("FAIL: cannot parse `go tool pprof -raw %s`:\n%s"
                         % (path, p.stdout[:3000]))
    return prof


def top_flat(path, index, env):
    flat, p = pprof_tool.top_flat(path, index, env)
    if p.returncode != 0:
        raise SystemExit("FAIL: go tool pprof -top exited %d: %s"
                         % (p.returncode, p.stderr[-2000:]))
    return flat, p.stdout


def default_type(path, env):
    p = pprof(["-top", "-nodecount=1"], path, env)
    for line in p.stdout.splitlines():
        if line.startswith("Type:"):
            return line.split(":", 1)[1].strip()
    return None


# ------------------------------------------------------------- the checks

def check_structure(prof, label, sites, rate, depth):
    """Per-site sums of the four values; structural failures recorded."""
    if prof.period_type != "space bytes":
        fail("%s: PeriodType is %r, want 'space bytes'" %
             (label, prof.period_type))
    if rate is not None and prof.period != rate:
        fail("%s: Period is %r, want %d" % (label, prof.period, rate))
    want = ["%s/%s" % (t, u) for t, u in zip(TYPES, UNITS)]
    if prof.types != want:
        fail("%s: sample types %s, want %s" % (label, prof.types, want))

    heapprof_maps = {mid for mid, f in prof.maps.items()
                     if os.path.basename(f).startswith("libheapprof")}
    sums = {s: [0, 0, 0, 0] for s in sites}
    nsamples = {s: 0 for s in sites}
    maxdepth = {s: 0 for s in sites}
    bad_frames = set()
    bad_leaf = {}
    no_main = set()
    other = [0, [0, 0, 0, 0]]  # samples outside the sites (libc, loader)
    for vals, ids in prof.samples:
        names = prof.names(ids)
        for n in names:
            if n.startswith("hp_") or n.startswith("heapprof_"):
                bad_frames.add(n)
        for lid in ids:
            mid = prof.loc_mapping.get(lid)
            if mid in heapprof_maps:
                bad_frames.add("location %d in %s (%s)" % (
                    lid, prof.maps[mid], "/".join(prof.locs[lid]) or "??"))
        if names and names[0] in ALLOCATORS:
            bad_frames.add("allocator entry point %s as a leaf" % names[0])
        in_site = [n for n in names if n in sites]
        if not in_site:
            other[0] += 1
            for i in range(4):
                other[1][i] += vals[i]
            continue
        site = in_site[0]
        if names[0] != site:
            bad_leaf.setdefault(site, set()).add(names[0])
        if site != "site_deep_live" and "main" not in names:
            no_main.add(site)
        for i in range(4):
            sums[site][i] += vals[i]
        nsamples[site] += 1
        maxdepth[site] = max(maxdepth[site], len(ids))
    note("%s: %d samples outside the sites (libc, start-up): %s" % (
        label, other[0], ", ".join("%s %d" % (t, v)
                                   for t, v in zip(TYPES, other[1]))))
    if bad_frames:
        fail("%s: heapprof frames in stacks: %s" %
             (label, ", ".join(sorted(bad_frames))))
    for site, leaves in sorted(bad_leaf.items()):
        fail("%s: samples of %s have leaf %s, want %s itself" % (
            label, site, ", ".join(sorted(leaves)), site))
        if leaves & ALLOCATORS:
            fail("%s: allocator entry point is the leaf of %s" % (label, site))
    for site in sorted(no_main):
        fail("%s: stacks of %s do not reach main" % (label, site))
    if depth is not None and nsamples.get("site_deep_live"):
        got = maxdepth["site_deep_live"]
        if got != depth:
            fail("%s: site_deep_live (%d+ frames deep) has stacks of %d "
                 "frames, want the cap %d" % (label, 100, got, depth))
        else:
            note("%s: deep stacks capped at %d frames: ok" % (label, got))
    return sums, nsamples


def rel(est, true):
    if true == 0:
        return 0.0 if est == 0 else math.inf
    return (est - true) / true


def check_accuracy(label, truth, sums, nsamples, site_tol, total_tol,
                   exact=False):
    sites = truth["sites"]
    note("%s: per-site estimate vs truth (err %%, and in sd of the "
         "estimator)" % label)
    totals_t = [0, 0, 0, 0]
    totals_e = [0, 0, 0, 0]
    totals_v = [0.0, 0.0, 0.0, 0.0]
    totals_w = [0.0, 0.0, 0.0, 0.0]
    for site, t in sites.items():
        parts = []
        for i, ty in enumerate(TYPES):
            tv, ev = t[ty], sums[site][i]
            var = t["var"][ty]
            totals_t[i] += tv
            totals_e[i] += ev
            totals_v[i] += var
            if site == "site_freed" and ty.startswith("inuse"):
                # Everything it allocated was freed.
                ok = ev <= 0.01 * t[ty.replace("inuse", "alloc")]
                parts.append("%s=%d" % (ty, ev))
                if not ok:
                    fail("%s: %s has %s %d, want ~0 (all freed; alloc %d)" % (
                        label, site, ty, ev,
                        t[ty.replace("inuse", "alloc")]))
                continue
            r = rel(ev, tv)
            sd = math.sqrt(var) / tv if tv else 0.0
            if not exact and sd > 0 and site_tol / sd < MIN_SIGMAS:
                raise SystemExit(
                    "FAIL: test design: %s %s +-%g%% is only %.1f sd" % (
                        site, ty, 100 * site_tol, site_tol / sd))
            if not exact and var > 0 and t["maxw"][ty] > MAX_WEIGHT * tv:
                raise SystemExit(
                    "FAIL: test design: one sample of %s weighs %.0f in %s,"
                    " more than %g%% of %d" % (site, t["maxw"][ty], ty,
                                               100 * MAX_WEIGHT, tv))
            if var > 0:  # always-sampled blocks carry no randomness
                totals_w[i] = max(totals_w[i], t["maxw"][ty])
            zs = " %+.1fsd" % (r / sd) if sd > 0 and math.isfinite(r) else ""
            parts.append("%s %+.2f%%%s" % (ty, 100 * r, zs))
            if exact:
                ok = abs(ev - tv) <= max(1, site_tol * tv)
            else:
                ok = abs(r) <= site_tol
            if not ok:
                fail("%s: %s %s = %d, truth %d (%+.2f%%, bar +-%g%%)" % (
                    label, site, ty, ev, tv, 100 * r, 100 * site_tol))
        note("  %-19s %3d pprof samples: %s" % (site, nsamples[site],
                                          ", ".join(parts)))
    parts = []
    for i, ty in enumerate(TYPES):
        r = rel(totals_e[i], totals_t[i])
        sd = math.sqrt(totals_v[i]) / totals_t[i] if totals_t[i] else 0.0
        if not exact and sd > 0 and total_tol / sd < MIN_SIGMAS:
            raise SystemExit("FAIL: test design: total %s +-%g%% is only "
                             "%.1f sd" % (ty, 100 * total_tol, total_tol / sd))
        if not exact and totals_w[i] > MAX_WEIGHT * totals_t[i]:
            raise SystemExit("FAIL: test design: one sample weighs %.0f, "
                             "more than %g%% of the total %s" % (
                                 totals_w[i], 100 * MAX_WEIGHT, ty))
        zs = " %+.1fsd" % (r / sd) if sd > 0 else ""
        parts.append("%s %d vs %d %+.2f%%%s" % (ty, totals_e[i], totals_t[i],
                                                100 * r, zs))
        if exact:
            ok = abs(totals_e[i] - totals_t[i]) <= max(1, total_tol *
                                                        totals_t[i])
        else:
            ok = abs(r) <= total_tol
        if not ok:
            fail("%s: total %s over the sites = %d, truth %d (%+.2f%%, bar "
                 "+-%g%%)" % (label, ty, totals_e[i], totals_t[i], 100 * r,
                              100 * total_tol))
    note("  %-19s %s" % ("TOTAL (sites)", "; ".join(parts)))


def check_top(label, path, sums, env):
    """`go tool pprof -top` must show the same flat value per site."""
    for i, ty in enumerate(TYPES):
        flat, out = top_flat(path, ty, env)
        for site, vals in sums.items():
            v = vals[i]
            got = flat.get(site, 0)
            if abs(got - v) > max(1, 1e-6 * abs(v)):
                fail("%s: pprof -top -sample_index=%s flat %s = %s, -raw "
                     "sum %d" % (label, ty, site, got, v))


def workload_env(args, extra=None):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if args.preload:
        env["LD_PRELOAD"] = args.preload
    if extra:
        env.update(extra)
    return env


def run_workload(args, workdir, scale, extra_env=None):
    heap = os.path.join(workdir, "heap.pb.gz")
    allocs = os.path.join(workdir, "allocs.pb.gz")
    truthf = os.path.join(workdir, "truth.json")
    for f in (heap, allocs, truthf):
        if os.path.exists(f):
            os.unlink(f)
    cmd = [args.workload, heap, allocs, truthf, str(scale)]
    p = subprocess.run(cmd, env=workload_env(args, extra_env),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    if p.stdout.strip():
        note(p.stdout.strip())
    truth = None
    if p.returncode == 0 and os.path.exists(truthf):
        with open(truthf) as f:
            truth = json.load(f)
    return p, heap, allocs, truth


def rate_from_env():
    v = os.environ.get("HEAPPROF_RATE")
    if v is None or not v.isdigit():
        return DEFAULT_RATE
    return int(v)


def depth_from_env():
    v = os.environ.get("HEAPPROF_STACK_DEPTH")
    if v is None or not v.isdigit():
        return DEFAULT_DEPTH
    return int(v)


def check_profiles(args, label, heap, allocs, truth, rate, depth):
    env = pprof_tool.tool_env()
    prof = read_profile(heap, env)
    sites = list(truth["sites"])
    sums, nsamples = check_structure(prof, label + " heap", sites, rate,
                                     depth)
    aprof = read_profile(allocs, env)
    asums, _ = check_structure(aprof, label + " allocs", sites, rate, None)
    if asums != sums:
        fail("%s: heap and allocs profiles disagree: %s vs %s" % (
            label, sums, asums))
    dt = default_type(heap, env)
    if dt != "inuse_space":
        fail("%s: heap profile's default sample type is %r, want "
             "inuse_space" % (label, dt))
    dt = default_type(allocs, env)
    if dt != "alloc_space":
        fail("%s: allocs profile's default sample type is %r, want "
             "alloc_space" % (label, dt))
    return prof, sums, nsamples


def mode_accuracy(args, workdir, exact):
    rate = rate_from_env()
    if exact and rate != 1:
        raise SystemExit("FAIL: exact mode needs HEAPPROF_RATE=1")
    scale = args.scale
    p, heap, allocs, truth = run_workload(args, workdir, scale)
    if p.returncode != 0 or truth is None:
        raise SystemExit("FAIL: workload exited %d\n%s" % (p.returncode,
                                                           p.stderr))
    if p.stderr.strip():
        fail("unexpected stderr from the workload: %s" % p.stderr.strip())
    label = args.label
    prof, sums, nsamples = check_profiles(args, label, heap, allocs, truth,
                                          rate, depth_from_env())
    if exact:
        check_accuracy(label, truth, sums, nsamples, 1e-4, 1e-4, exact=True)
    else:
        check_accuracy(label, truth, sums, nsamples, SITE_TOL, TOTAL_TOL)
    check_top(label, heap, sums, pprof_tool.tool_env())


def mode_off(args, workdir):
    p, heap, allocs, truth = run_workload(args, workdir, args.scale)
    if p.returncode != 0 or truth is None:
        raise SystemExit("FAIL: workload exited %d\n%s" % (p.returncode,
                                                           p.stderr))
    for path in (heap, allocs):
        prof = read_profile(path, pprof_tool.tool_env())
        sites = set(truth["sites"])
        hit = [s for vals, ids in prof.samples
               for s in prof.names(ids) if s in sites and any(vals)]
        if hit:
            fail("%s: HEAPPROF_RATE=0 but %s has samples from %s" % (
                args.label, os.path.basename(path), ", ".join(sorted(
                    set(hit)))))
        note("%s: %s: %d samples, none from the sites" % (
            args.label, os.path.basename(path), len(prof.samples)))


def stderr_lines(text):
    return [ln for ln in text.splitlines() if ln.strip()]


def check_bad_stderr(label, text, bad_vars):
    lines = stderr_lines(text)
    for ln in lines:
        note("  %s stderr: %s" % (label, ln))
    if len(lines) != len(bad_vars):
        fail("%s: %d stderr lines, want exactly %d (one per bad variable)"
             % (label, len(lines), len(bad_vars)))
    for var in bad_vars:
        word = re.compile(r"(?<![A-Za-z0-9_])%s(?![A-Za-z0-9_])" % var)
        n = sum(1 for ln in lines if word.search(ln))
        if n != 1:
            fail("%s: %d stderr lines name %s, want 1" % (label, n, var))


def mode_badenv(args, workdir):
    bad = args.bad_var
    if not bad:
        raise SystemExit("FAIL: badenv mode needs --bad-var")
    for var in bad:
        if var not in os.environ:
            raise SystemExit("FAIL: %s is not set in the environment" % var)
    if args.preload:
        for cmd, want in ((["/bin/true"], 0), (["/bin/false"], 1),
                          (["/bin/sh", "-c", "exit 42"], 42)):
            p = subprocess.run(cmd, env=workload_env(args),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
            label = "%s %s" % (args.label, " ".join(cmd))
            if p.returncode != want:
                fail("%s: exit code %d, want %d" % (label, p.returncode,
                                                    want))
            check_bad_stderr(label, p.stderr, bad)
    p, heap, allocs, truth = run_workload(args, workdir, args.scale)
    label = args.label + " workload"
    if p.returncode != 0 or truth is None:
        raise SystemExit("FAIL: workload exited %d\n%s" % (p.returncode,
                                                           p.stderr))
    check_bad_stderr(label, p.stderr, bad)
    rate = DEFAULT_RATE if "HEAPPROF_RATE" in bad else rate_from_env()
    depth = (DEFAULT_DEPTH if "HEAPPROF_STACK_DEPTH" in bad
             else depth_from_env())
    prof, sums, nsamples = check_profiles(args, label, heap, allocs, truth,
                                          rate, depth)
    if not nsamples.get("site_deep_live"):
        fail("%s: no sample from site_deep_live: cannot check the default "
             "stack depth" % label)
    note("%s: defaults kept: period %s, deep stacks %s frames" % (
        label, prof.period, depth))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workload", required=True)
    ap.add_argument("--preload", help="libheapprof.so to LD_PRELOAD")
    ap.add_argument("--mode", required=True,
                    choices=["accuracy", "exact", "off", "badenv"])
    ap.add_argument("--scale", type=int, default=1)
    ap.add_argument("--label", default="e2e")
    ap.add_argument("--bad-var", action="append", default=[])
    ap.add_argument("--workdir", help="kept output directory")
    args = ap.parse_args()

    if "PPROF_TMPDIR" not in os.environ:
        os.environ["PPROF_TMPDIR"] = tempfile.mkdtemp(prefix="pprof-")
    os.makedirs(os.environ["PPROF_TMPDIR"], exist_ok=True)
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
        workdir = args.workdir
    else:
        workdir = tempfile.mkdtemp(prefix="heapprof-e2e-")
    note("%s: mode %s, workload %s%s, HEAPPROF_RATE=%s, outputs in %s" % (
        args.label, args.mode, args.workload,
        " preloaded with " + args.preload if args.preload else " (linked)",
        os.environ.get("HEAPPROF_RATE", "<unset>"), workdir))

    if args.mode in ("accuracy", "exact"):
        mode_accuracy(args, workdir, args.mode == "exact")
    elif args.mode == "off":
        mode_off(args, workdir)
    else:
        mode_badenv(args, workdir)

    if failures:
        print("%s: %d check(s) failed" % (args.label, len(failures)))
        return 1
    print("%s: all checks passed" % args.label)
    return 0


if __name__ == "__main__":
    sys.exit(main())
