#!/usr/bin/python3
"""heapprof's own views of the heap, end to end: the age filter (leak
suspects: ?min_age= / heapprof_write_aged) and the peak-heap profile
(?peak=1 / HEAPPROF_PROFILE_PEAK), read back with the real `go tool pprof`
from files written through the API and from the built-in listener.

heap_views keeps 8000 x 4 KiB from old_site, sleeps 1.5 s, keeps 4000 x
4 KiB from young_site, then allocates 12000 x 4 KiB from peak_site and frees
them all. So:
  aged (min_age: old_site's age less 100 ms, taken when the profile is
  asked for, so a slow machine cannot age young_site past it)
                      old_site only;
  peak                old_site + young_site + peak_site, peak_site within
                      the capture margin (1/64 of the total, >= 2 periods);
  heap (now)          old_site + young_site, no peak_site.
With --exact (HEAPPROF_RATE=1) the values are exact up to that margin;
otherwise within +-10 %.
"""

import argparse
import calendar
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pprof_tool  # noqa: E402
from pprof_tool import fail, free_port  # noqa: E402
FAILS = pprof_tool.FAILURES

INUSE_OBJECTS, INUSE_SPACE = 2, 3


def read(src, label):
    p = pprof_tool.go_pprof(["-raw"], src, env=pprof_tool.tool_env())
    if p.returncode != 0:
        fail("%s: go tool pprof -raw exited %d: %s" % (label, p.returncode,
                                                        p.stderr[-1000:]))
        return None
    prof = pprof_tool.parse_raw(p.stdout)
    if prof.types != ["alloc_objects/count", "alloc_space/bytes",
                      "inuse_objects/count", "inuse_space/bytes"]:
        fail("%s: sample types %s" % (label, prof.types))
        return None
    return prof


def site(prof, name):
    return prof.by_leaf().get(name, [0, 0, 0, 0])


def close(label, got, want, tol, slack=0):
    """|got - want| <= tol * want + slack."""
    ok = abs(got - want) <= tol * want + slack
    print("  %-34s %12d want %12d %s" % (label, got, want,
                                         "ok" if ok else "MISMATCH"), flush=True)
    if not ok:
        fail("%s: %d, want %d (tolerance %.0f %% + %d)" % (
            label, got, want, tol * 100, slack))


def check_views(label, aged, peak, heap, truth, tol, margin):
    for what, prof in (("aged", aged), ("peak", peak), ("heap", heap)):
        if prof is None:
            return
    n_old, b_old = truth["old_site"]
    n_young, b_young = truth["young_site"]
    n_peak, b_peak = truth["peak_site"]
    # Leak suspects: only what was allocated more than a second ago, and
    # both pairs of columns describe it.
    old = site(aged, "old_site")
    close(label + " aged old_site inuse_space", old[INUSE_SPACE], b_old, tol)
    close(label + " aged old_site inuse_objects", old[INUSE_OBJECTS], n_old, tol)
    if old[1] != old[INUSE_SPACE] or old[0] != old[INUSE_OBJECTS]:
        fail("%s aged: alloc columns %s differ from inuse" % (label, old))
    for young in ("young_site", "peak_site"):
        v = site(aged, young)
        if any(v):
            fail("%s aged: %s is younger than min_age but has %s" % (label, young, v))
    # The peak: everything that was live at the highest point.
    close(label + " peak peak_site inuse_space", site(peak, "peak_site")[INUSE_SPACE],
          b_peak, tol, margin)
    close(label + " peak old_site inuse_space", site(peak, "old_site")[INUSE_SPACE],
          b_old, tol)
    close(label + " peak young_site inuse_space",
          site(peak, "young_site")[INUSE_SPACE], b_young, tol)
    # Now: the burst is gone.
    if site(heap, "peak_site")[INUSE_SPACE] != 0:
        fail("%s heap: peak_site still in use: %s" % (label, site(heap, "peak_site")))
    close(label + " heap young_site inuse_space",
          site(heap, "young_site")[INUSE_SPACE], b_young, tol)


def http_status(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--rate", type=int, required=True)
    args = ap.parse_args()
    exact = args.rate == 1
    tol = 0.0 if exact else 0.10
    os.makedirs(args.workdir, exist_ok=True)
    port = free_port()
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("HEAPPROF_"):
            del env[k]
    env["HEAPPROF_RATE"] = str(args.rate)
    env["HEAPPROF_HTTP"] = "127.0.0.1:%d" % port
    started = time.time()
    proc = subprocess.Popen([args.workload, args.workdir], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    truth = {}
    old_end_ns = None
    try:
        for line in proc.stdout:
            parts = line.split()
            if parts and parts[0] == "truth":
                truth[parts[1]] = (int(parts[2]), int(parts[3]))
            elif parts and parts[0] == "times":
                old_end_ns = int(parts[1])
            elif parts and parts[0] == "ready":
                if parts[1] != "0":
                    fail("workload: an API call failed (ready %s)" % parts[1])
                if old_end_ns is None:
                    raise SystemExit("FAIL: workload did not print its times")
                break
        else:
            raise SystemExit("FAIL: workload exited before it was ready")
        # Margin of the peak capture: 1/64 of the total in use at the peak,
        # at least two sampling periods.
        total = sum(b for _, b in truth.values())
        margin = max(total // 64, 2 * args.rate)
        label = "rate=%d" % args.rate

        files = {k: read(os.path.join(args.workdir, k + ".pb.gz"), label + " " + k)
                 for k in ("aged", "peak", "heap")}
        check_views(label + " files", files["aged"], files["peak"], files["heap"],
                    truth, tol, margin)

        base = "http://127.0.0.1:%d/debug/pprof/" % port
        for _ in range(100):
            try:
                if http_status(base)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        # old_site's age less 100 ms: young_site (1.5 s younger) stays out
        # however long the checks above took.
        aged_ms = (time.monotonic_ns() - old_end_ns) // 1000000 - 100
        check_views(label + " http",
                    read(base + "heap?min_age=%dms" % aged_ms, label + " http aged"),
                    read(base + "heap?peak=1", label + " http peak"),
                    read(base + "heap", label + " http heap"), truth, tol, margin)
        # The comments give the peak capture's time in UTC, within this run.
        peak_when = None
        now_heap = read(base + "heap", label + " http heap")
        for c in (now_heap.comments if now_heap is not None else []):
            m = re.search(r"peak profile: \d+ bytes at "
                          r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.\d{3}Z", c)
            if m:
                peak_when = calendar.timegm(time.strptime(m.group(1),
                                                          "%Y-%m-%dT%H:%M:%S"))
        if peak_when is None or not started - 2 <= peak_when <= time.time() + 2:
            fail("peak profile's UTC time %r is not within the run (%d..%d)"
                 % (peak_when, started, time.time()))
        # min_age in other spellings, and the debug=1 text form.
        for q in ("min_age=1", "min_age=1000ms", "min_age=0.5m&gc=1"):
            want = 200 if q != "min_age=0.5m&gc=1" else 200
            st, body = http_status(base + "heap?" + q)
            if st != want:
                fail("heap?%s: status %d" % (q, st))
        st, body = http_status(base + "heap?min_age=1s&debug=1")
        if st != 200 or not body.startswith(b"heap profile:"):
            fail("heap?min_age=1s&debug=1: %d %r" % (st, body[:60]))
        # min_age=30s: nothing is that old yet.
        young = read(base + "heap?min_age=30s", label + " http aged 30s")
        if young is not None and site(young, "old_site")[INUSE_SPACE] != 0:
            fail("min_age=30s still shows old_site")
        # Bad requests: 400 with a one-line reason; the process keeps going.
        for q in ("heap?min_age=abc", "heap?min_age=-5s", "heap?min_age=5parsecs",
                  "heap?peak=yes", "allocs?peak=1", "allocs?min_age=1s",
                  "heap?min_age=1s&peak=1", "heap?min_age=1s&seconds=1",
                  "heap?peak=1&seconds=1"):
            st, body = http_status(base + q)
            lines = body.decode(errors="replace").strip().splitlines()
            print("  %-30s %d %s" % (q, st, lines[0] if lines else ""), flush=True)
            if st != 400 or len(lines) != 1:
                fail("%s: status %d body %r (want 400 and one line)" % (q, st, body[:200]))
        if http_status(base + "heap")[0] != 200:
            fail("the listener stopped answering after bad requests")
    finally:
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
    if rc != 0:
        fail("workload exit code %d" % rc)
    if FAILS:
        raise SystemExit("FAIL: %d check(s) failed" % len(FAILS))
    print("PASS")


if __name__ == "__main__":
    main()
