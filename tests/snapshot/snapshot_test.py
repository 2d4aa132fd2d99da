#!/usr/bin/python3
"""End-to-end tests of heapprof's snapshots to disk (HEAPPROF_SNAPSHOT_*).

Each test case is one run of this script (one ctest, one process):

  periodic    interval 1 s, KEEP=3, ~5 s: names, count, every file read by
              the real `go tool pprof` with the workload's sites and exact
              values (HEAPPROF_RATE=1); a watcher lists the directory in a
              tight loop meanwhile and finds no partial file
  burst       heapprof_snapshot_now() in a loop: several per second, none
              overwritten (count == successful calls), none partial
  kill9       kill -9 while snapshots are being written: no visible
              partial file, leftovers are hidden temporaries only
  unwritable  a directory under a regular file, a missing directory that
              appears later, a directory removed and re-created: the host
              exits normally with the same output, one short stderr line
              per kind of failure, snapshots resume
  fork        parent and child write snapshots with their own pids, the
              child's profile has none of the parent's later allocations
              (--passive: the child calls no heapprof API)
  reset       heapprof_reset(): allocation columns restart from what is
              live, exactly (HEAPPROF_RATE=1)
  signal      HEAPPROF_SNAPSHOT_SIGNAL=USR2 and HEAPPROF_SNAPSHOT_AT_EXIT=1
  soak        many threads churning over many distinct stacks with
              HEAPPROF_MAX_MEMORY=4M: profiler metadata stays within the
              budget, dropped stacks are counted, RSS stops growing

usage: snapshot_test.py CASE --workload W --preload LIB --workdir D [opts]
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pprof_tool  # noqa: E402
from pprof_tool import fail, note, wait_for  # noqa: E402
failures = pprof_tool.FAILURES


def name_re(pid, suffix=False):
    tail = r"(-[1-9][0-9]*)?" if suffix else ""
    return re.compile(r"^heap-%d-(\d{8}T\d{6}Z)%s\.pb\.gz$" % (pid, tail))


# ----------------------------------------------------------------- running

class Env:
    def __init__(self, args):
        self.args = args
        base = {k: v for k, v in os.environ.items()
                if not k.startswith("HEAPPROF_") and k != "LD_PRELOAD"}
        self.base = base
        self.pprof_tmp = os.path.join(args.workdir, "pprof-tmp")
        os.makedirs(self.pprof_tmp, exist_ok=True)

    def workload_env(self, **hp):
        env = dict(self.base)
        env["LD_PRELOAD"] = self.args.preload
        for k, v in hp.items():
            env["HEAPPROF_" + k] = str(v)
        return env

    def start(self, argv, **hp):
        return subprocess.Popen([self.args.workload] + [str(a) for a in argv],
                                env=self.workload_env(**hp),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    def start_logged(self, argv, log, **hp):
        """start, with stderr going to the file log so the test can wait
        for a line while the workload runs; finish() collects both."""
        with open(log, "w") as f:
            p = subprocess.Popen(
                [self.args.workload] + [str(a) for a in argv],
                env=self.workload_env(**hp), stdout=subprocess.PIPE,
                stderr=f, text=True)
        p.log = log
        return p

    def run(self, argv, timeout=120, **hp):
        p = self.start(argv, **hp)
        out, err = p.communicate(timeout=timeout)
        return p, out, err

    def pprof(self, *args):
        env = dict(self.base)
        env["PPROF_TMPDIR"] = self.pprof_tmp
        env["HOME"] = self.pprof_tmp
        p = subprocess.run(["go", "tool", "pprof"] + list(args), env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=120)
        return p


def finish(p, timeout=60):
    """The stdout and stderr of a workload from Env.start_logged."""
    out, _ = p.communicate(timeout=timeout)
    with open(p.log) as f:
        return out, f.read()


def logged(p, pattern, timeout=30):
    """Wait until the workload's stderr has a line matching pattern."""
    def seen():
        with open(p.log) as f:
            return re.search(pattern, f.read())
    return wait_for(seen, timeout)


def proc_status(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return line.split()[1]
    except OSError:
        pass
    return None


def catches(pid, sig):
    """The process has a handler installed for sig (SigCgt)."""
    mask = proc_status(pid, "SigCgt")
    return mask is not None and (int(mask, 16) >> (sig - 1)) & 1


def threads(pid):
    try:
        return len(os.listdir("/proc/%d/task" % pid))
    except OSError:
        return 0


def fresh_dir(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def heapprof_lines(stderr):
    return [l for l in stderr.splitlines() if l.startswith("heapprof[")]


# ------------------------------------------------------------ profile data

class Profile:
    """What `go tool pprof -raw` shows, seen as samples with leaf-first
    function names, and the comments."""

    def __init__(self, text):
        raw = pprof_tool.parse_raw(text)
        self.raw = raw
        self.comments = raw.comments
        self.samples = [(vals, raw.names(ids)) for vals, ids in raw.samples]

    def site(self, func):
        """Sum of the four values over samples whose leaf is func."""
        tot = [0, 0, 0, 0]
        for vals, funcs in self.samples:
            if funcs and funcs[0] == func:
                for i in range(4):
                    tot[i] += vals[i]
        return tot

    def has_func(self, func):
        return any(func in funcs for _, funcs in self.samples)

    def comment_num(self, pattern):
        return self.raw.comment_num(pattern)


def read_profile(env, path):
    p = env.pprof("-raw", path)
    if p.returncode != 0:
        fail("go tool pprof -raw %s exited %d: %s" % (
            path, p.returncode, p.stderr[-500:]))
        return None
    return Profile(p.stdout)


def check_top(env, path, funcs, sample_index=None):
    args = ["-top"]
    if sample_index:
        args.append("-sample_index=" + sample_index)
    p = env.pprof(*(args + [path]))
    if p.returncode != 0:
        fail("go tool pprof -top %s exited %d: %s" % (
            path, p.returncode, p.stderr[-500:]))
        return
    for f in funcs:
        if f not in p.stdout:
            fail("%s: %s not in go tool pprof -top%s" % (
                os.path.basename(path), f,
                " -sample_index=" + sample_index if sample_index else ""))


def gzip_complete(path):
    """True if the file is one complete gzip stream, None if it vanished
    (rotated away) before it could be opened."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    d = zlib.decompressobj(wbits=31)
    try:
        d.decompress(data)
        d.flush()
    except zlib.error:
        return False
    return d.eof and not d.unused_data


class Watcher(threading.Thread):
    """Lists the directory in a tight loop and checks every visible
    heap-*.pb.gz the moment it appears (and again later)."""

    def __init__(self, directory):
        super().__init__(daemon=True)
        self.dir = directory
        self.stop = False
        self.listings = 0
        self.checked = {}
        self.bad = []

    def run(self):
        while not self.stop:
            try:
                names = os.listdir(self.dir)
            except FileNotFoundError:
                continue
            self.listings += 1
            for n in names:
                if n.startswith(".") or not n.startswith("heap-") or \
                        not n.endswith(".pb.gz"):
                    continue
                if self.checked.get(n, 0) >= 2:
                    continue
                ok = gzip_complete(os.path.join(self.dir, n))
                if ok is None:
                    continue
                if not ok:
                    self.bad.append(n)
                self.checked[n] = self.checked.get(n, 0) + 1

    def finish(self, min_files):
        self.stop = True
        self.join()
        note("watcher: %d listings, %d files checked, %d partial" % (
            self.listings, len(self.checked), len(self.bad)))
        if self.bad:
            fail("watcher saw partial files: %s" % self.bad[:5])
        if len(self.checked) < min_files:
            fail("watcher checked only %d files (want >= %d)" % (
                len(self.checked), min_files))


def own_files(directory, pid, suffix=False):
    rx = name_re(pid, suffix)
    return sorted(n for n in os.listdir(directory) if rx.match(n))


def snapshot_order(name):
    m = re.match(r"^heap-\d+-(\d{8}T\d{6}Z)(?:-(\d+))?\.pb\.gz$", name)
    return (m.group(1), int(m.group(2) or 0))


# ------------------------------------------------------------------- cases

def case_periodic(env, a):
    d = fresh_dir(os.path.join(a.workdir, "snaps"))
    w = Watcher(d)
    w.start()
    t0 = time.time()
    p, out, err = env.run(["churn", "5.5"], RATE=1, SNAPSHOT_DIR=d,
                          SNAPSHOT_INTERVAL=1, SNAPSHOT_KEEP=3)
    t1 = time.time()
    w.finish(min_files=4)
    if p.returncode != 0:
        fail("workload exited %d: %s" % (p.returncode, err[-500:]))
    if heapprof_lines(err):
        fail("unexpected heapprof messages: %s" % heapprof_lines(err))
    names = os.listdir(d)
    note("files: %s" % names)
    rx = name_re(p.pid)
    own = [n for n in names if rx.match(n)]
    others = [n for n in names if not rx.match(n)]
    if others:
        fail("unexpected files in the directory: %s" % others)
    if len(own) != 3:
        fail("%d snapshot files at the end, want 3 (KEEP=3)" % len(own))
    lo = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t0 - 1))
    hi = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t1 + 1))
    for n in sorted(own):
        ts = rx.match(n).group(1)
        if not lo <= ts <= hi:
            fail("%s: timestamp outside the run (%s..%s)" % (n, lo, hi))
        path = os.path.join(d, n)
        check_top(env, path, ["site_snap_live"])
        check_top(env, path, ["site_snap_live", "site_snap_churn"],
                  "alloc_space")
        prof = read_profile(env, path)
        if prof is None:
            continue
        live = prof.site("site_snap_live")
        # HEAPPROF_RATE=1: every allocation recorded, values exact.
        if live != [1000, 10000000, 1000, 10000000]:
            fail("%s: site_snap_live values %s, want "
                 "[1000, 10000000, 1000, 10000000]" % (n, live))
        churn = prof.site("site_snap_churn")
        if churn[0] <= 0 or churn[2] > 100:
            fail("%s: site_snap_churn values %s" % (n, churn))
        if not any(c.startswith("heapprof") and "rate=1" in c
                   for c in prof.comments):
            fail("%s: no rate in the comments %s" % (n, prof.comments))


def case_burst(env, a):
    d = fresh_dir(os.path.join(a.workdir, "snaps"))
    w = Watcher(d)
    w.start()
    p, out, err = env.run(["burst", "3"], RATE=4096, SNAPSHOT_DIR=d,
                          SNAPSHOT_INTERVAL=3600, SNAPSHOT_KEEP=1000000)
    w.finish(min_files=3)
    if p.returncode != 0:
        fail("workload exited %d: %s" % (p.returncode, err[-500:]))
    m = re.search(r"ok=(\d+) fail=(\d+)", out)
    if not m:
        fail("no result line: %r" % out)
        return
    ok, bad = int(m.group(1)), int(m.group(2))
    own = own_files(d, p.pid, suffix=True)
    others = [n for n in os.listdir(d) if n not in own]
    note("snapshot_now: ok=%d fail=%d; %d files" % (ok, bad, len(own)))
    if bad:
        fail("%d heapprof_snapshot_now() calls failed" % bad)
    if others:
        fail("unexpected files: %s" % others[:5])
    if len(own) != ok:
        fail("%d files for %d successful snapshots (overwritten?)" % (
            len(own), ok))
    plain = [n for n in own if name_re(p.pid).match(n)]
    suffixed = [n for n in own if n not in plain]
    if ok > 10 and not suffixed:
        fail("no same-second name got a sequence suffix")
    seconds = {snapshot_order(n)[0] for n in own}
    if len(plain) != len(seconds):
        fail("%d plain names for %d distinct seconds" % (len(plain),
                                                        len(seconds)))
    ordered = sorted(own, key=snapshot_order)
    for n in [ordered[0], ordered[-1]]:
        check_top(env, os.path.join(d, n), ["site_snap_live"])


def case_kill9(env, a):
    leftovers = 0
    for rnd in range(3):
        d = fresh_dir(os.path.join(a.workdir, "snaps%d" % rnd))
        p = env.start(["spin", "60"], RATE=1, SNAPSHOT_DIR=d,
                      SNAPSHOT_INTERVAL=1, SNAPSHOT_KEEP=1000)
        deadline = time.time() + 30
        while time.time() < deadline and len(
                [n for n in os.listdir(d) if not n.startswith(".")]) < 2:
            time.sleep(0.01)
        time.sleep(0.05 + 0.11 * rnd)
        p.send_signal(signal.SIGKILL)
        p.communicate()
        names = os.listdir(d)
        visible = [n for n in names if not n.startswith(".")]
        hidden = [n for n in names if n.startswith(".")]
        leftovers += len(hidden)
        note("round %d: %d visible, hidden leftovers %s" % (
            rnd, len(visible), hidden))
        rx = name_re(p.pid, suffix=True)
        for n in visible:
            if not rx.match(n):
                fail("unexpected visible file %s" % n)
            elif not gzip_complete(os.path.join(d, n)):
                fail("partial visible file after kill -9: %s" % n)
        for n in hidden:
            if not re.match(r"^\.heap-%d-.*\.pb\.gz\.%d\.tmp$" % (
                    p.pid, p.pid), n):
                fail("unexpected hidden file %s" % n)
        if visible:
            last = sorted(visible, key=snapshot_order)[-1]
            check_top(env, os.path.join(d, last), ["site_snap_deep"])
        else:
            fail("round %d: no snapshot before the kill" % rnd)
    note("hidden temporaries left by the kills: %d (killed mid-write)"
         % leftovers)


def expect_lines(err, patterns, what):
    lines = heapprof_lines(err)
    note("%s: stderr heapprof lines: %s" % (what, lines))
    for pat, count in patterns:
        n = sum(1 for l in lines if re.search(pat, l))
        if n != count:
            fail("%s: %d stderr lines match %r, want %d" % (
                what, n, pat, count))
    other = [l for l in lines if not any(re.search(p, l)
                                         for p, _ in patterns)]
    if other:
        fail("%s: other heapprof lines: %s" % (what, other))
    for l in lines:
        if len(l) > 300:
            fail("%s: message too long (%d chars)" % (what, len(l)))


def case_unwritable(env, a):
    ref = subprocess.run([a.workload, "churn", "3.5"], env=env.base,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    # 1. A path under a regular file: ENOTDIR for the whole run.
    regular = os.path.join(a.workdir, "regular-file")
    with open(regular, "w") as f:
        f.write("not a directory\n")
    p, out, err = env.run(["churn", "3.5"], SNAPSHOT_DIR=regular + "/sub",
                          SNAPSHOT_INTERVAL=1)
    if (p.returncode, out) != (ref.returncode, ref.stdout):
        fail("under a file: exit %d output %r, without heapprof exit %d "
             "output %r" % (p.returncode, out, ref.returncode, ref.stdout))
    expect_lines(err, [(r"snapshots to .*failing: the path is not a "
                        r"directory", 1)], "under a file")

    # 2. Missing at start, created once a snapshot failed: they resume.
    d = os.path.join(a.workdir, "later")
    shutil.rmtree(d, ignore_errors=True)
    p = env.start_logged(["churn", "6"], d + ".log", SNAPSHOT_DIR=d,
                         SNAPSHOT_INTERVAL=1, SNAPSHOT_KEEP=100)
    if not logged(p, r"failing: the directory does not exist"):
        fail("missing dir: no failure reported")
    os.makedirs(d)
    out, err = finish(p)
    if (p.returncode, out) != (ref.returncode, ref.stdout):
        fail("missing dir: exit %d output %r" % (p.returncode, out))
    n = len(own_files(d, p.pid, suffix=True))
    note("missing dir: %d snapshots after the directory appeared" % n)
    if n < 2:
        fail("missing dir: %d snapshots after it was created, want >= 2"
             % n)
    expect_lines(err, [(r"failing: the directory does not exist", 1),
                       (r"snapshots to .* resumed", 1)], "missing dir")

    # 3. Removed while running, re-created later.
    d = fresh_dir(os.path.join(a.workdir, "removed"))
    p = env.start_logged(["churn", "7.5"], d + ".log", SNAPSHOT_DIR=d,
                         SNAPSHOT_INTERVAL=1, SNAPSHOT_KEEP=100)
    wait_for(lambda: own_files(d, p.pid, suffix=True), 30)
    before = len(os.listdir(d))
    shutil.rmtree(d)
    if not logged(p, r"failing: the directory does not exist"):
        fail("removed dir: no failure reported")
    os.makedirs(d)
    out, err = finish(p)
    if (p.returncode, out) != (ref.returncode, ref.stdout):
        fail("removed dir: exit %d output %r" % (p.returncode, out))
    n = len(own_files(d, p.pid, suffix=True))
    note("removed dir: %d snapshots before removal, %d after re-creation"
         % (before, n))
    if before < 1 or n < 1:
        fail("removed dir: snapshots before %d, after %d" % (before, n))
    expect_lines(err, [(r"failing: the directory does not exist", 1),
                       (r"snapshots to .* resumed", 1)], "removed dir")


def case_fork(env, a):
    d = fresh_dir(os.path.join(a.workdir, "snaps"))
    p, out, err = env.run(["fork", "4.5", "0" if a.passive else "1"],
                          RATE=1, SNAPSHOT_DIR=d, SNAPSHOT_INTERVAL=1,
                          SNAPSHOT_KEEP=100)
    if p.returncode != 0:
        fail("workload exited %d: %s" % (p.returncode, err[-800:]))
    m = re.search(r"parent=(\d+) child=(\d+)", out)
    if not m:
        fail("no pid line in %r" % out)
        return
    parent, child = int(m.group(1)), int(m.group(2))
    if heapprof_lines(err):
        fail("unexpected heapprof messages: %s" % heapprof_lines(err))
    pf = own_files(d, parent, suffix=True)
    cf = own_files(d, child, suffix=True)
    others = [n for n in os.listdir(d) if n not in pf and n not in cf]
    note("parent %d: %d files, child %d: %d files, others %s" % (
        parent, len(pf), child, len(cf), others))
    if others:
        fail("files of other pids (or temporaries): %s" % others)
    if len(pf) < 3:
        fail("parent wrote %d snapshots, want >= 3" % len(pf))
    if len(cf) < 2:
        fail("child wrote %d snapshots, want >= 2 (its writer thread must "
             "come back after fork)" % len(cf))
    for who, files, mine, theirs in [
            ("parent", pf, "site_snap_parent_after", "site_snap_child_after"),
            ("child", cf, "site_snap_child_after", "site_snap_parent_after")]:
        if not files:
            continue
        last = os.path.join(d, sorted(files, key=snapshot_order)[-1])
        prof = read_profile(env, last)
        if prof is None:
            continue
        got = prof.site(mine)
        before = prof.site("site_snap_before_fork")
        if got[3] != 3000000 or got[2] != 300:
            fail("%s: %s in use %s, want 300 objects / 3000000 B" % (
                who, mine, got[2:]))
        if before[3] != 2000000:
            fail("%s: site_snap_before_fork in use %d, want 2000000" % (
                who, before[3]))
        if prof.has_func(theirs):
            fail("%s's profile has the other process's %s" % (who, theirs))
        check_top(env, last, [mine, "site_snap_before_fork"])


def case_reset(env, a):
    d = fresh_dir(os.path.join(a.workdir, "snaps"))
    p, out, err = env.run(["reset"], RATE=1, SNAPSHOT_DIR=d,
                          SNAPSHOT_INTERVAL=3600)
    if p.returncode != 0:
        fail("workload exited %d: %s" % (p.returncode, err[-800:]))
        return
    files = sorted(own_files(d, p.pid, suffix=True), key=snapshot_order)
    if len(files) != 2:
        fail("%d snapshots, want 2: %s" % (len(files), files))
        return
    first = read_profile(env, os.path.join(d, files[0]))
    second = read_profile(env, os.path.join(d, files[1]))
    if first is None or second is None:
        return
    want = [
        (first, "site_snap_live", [100, 1000000, 100, 1000000]),
        (first, "site_snap_freed", [100, 500000, 0, 0]),
        (second, "site_snap_live", [100, 1000000, 90, 900000]),
        (second, "site_snap_freed", [50, 250000, 0, 0]),
    ]
    for prof, site, values in want:
        got = prof.site(site)
        tag = "before reset" if prof is first else "after reset"
        note("%s %s: %s" % (tag, site, got))
        if got != values:
            fail("%s: %s = %s, want %s" % (tag, site, got, values))


def case_signal(env, a):
    d = fresh_dir(os.path.join(a.workdir, "snaps"))
    p = env.start_logged(["churn", "3"], d + ".log", SNAPSHOT_DIR=d,
                         SNAPSHOT_INTERVAL=3600, SNAPSHOT_SIGNAL="USR2",
                         SNAPSHOT_AT_EXIT=1)
    # Signal once heapprof's handler is in and the live set is there.
    if not wait_for(lambda: catches(p.pid, signal.SIGUSR2), 30):
        fail("no SIGUSR2 handler installed")
    if not logged(p, r"live set kept"):
        fail("the workload never kept its live set")
    if own_files(d, p.pid, suffix=True):
        fail("a snapshot before any signal (interval 3600)")
    p.send_signal(signal.SIGUSR2)
    deadline = time.time() + 1.5
    n = 0
    while time.time() < deadline:
        n = len(own_files(d, p.pid, suffix=True))
        if n:
            break
        time.sleep(0.01)
    if n != 1:
        fail("%d snapshots within 1.5 s of SIGUSR2, want 1" % n)
    out, err = finish(p)
    if p.returncode != 0 or not out.startswith("checksum"):
        fail("workload (SIGUSR2 handled by heapprof) exited %d output %r" % (
            p.returncode, out))
    if heapprof_lines(err):
        fail("unexpected heapprof messages: %s" % heapprof_lines(err))
    files = own_files(d, p.pid, suffix=True)
    note("files: %s" % files)
    if len(files) != 2:
        fail("%d snapshots, want 2 (signal + exit)" % len(files))
    for n in files:
        check_top(env, os.path.join(d, n), ["site_snap_live"])
    # Without the variable, USR2 keeps its default action (terminate).
    p = env.start(["churn", "2"], SNAPSHOT_DIR=d, SNAPSHOT_INTERVAL=3600)
    # Started: its snapshot thread runs (heapprof's start-up is over).
    if not wait_for(lambda: threads(p.pid) >= 2, 30):
        fail("no snapshot thread")
    p.send_signal(signal.SIGUSR2)
    p.communicate(timeout=60)
    if p.returncode != -signal.SIGUSR2:
        fail("without HEAPPROF_SNAPSHOT_SIGNAL, SIGUSR2 gave exit %d" %
             p.returncode)


def rss_kib(pid):
    v = proc_status(pid, "VmRSS")
    return int(v) if v is not None else None


def case_soak(env, a):
    d = fresh_dir(os.path.join(a.workdir, "snaps"))
    budget = 4 << 20
    secs = a.seconds
    interval = max(1, min(10, int(secs // 12) or 1))
    p = env.start(["soak", str(secs), str(a.threads)], RATE=4096,
                  MAX_MEMORY=budget, SNAPSHOT_DIR=d,
                  SNAPSHOT_INTERVAL=interval, SNAPSHOT_KEEP=3)
    t0 = time.time()
    rss = []
    while p.poll() is None:
        r = rss_kib(p.pid)
        if r is not None:
            rss.append((time.time() - t0, r))
        time.sleep(0.5)
    out, err = p.communicate()
    if p.returncode != 0 or "soak done" not in out:
        fail("soak workload exited %d: %s" % (p.returncode, err[-800:]))
    # The budget is meant to be reached: whether the live-block table or
    # the bucket table fills first depends on how far the threads ran
    # (slower on a loaded machine), and the first says so once.
    lines = [l for l in heapprof_lines(err)
             if "the live-block table is full" not in l]
    if lines:
        fail("unexpected heapprof messages: %s" % lines)
    files = sorted(own_files(d, p.pid, suffix=True), key=snapshot_order)
    if len(files) != 3:
        fail("%d snapshots at the end, want 3" % len(files))
    if not files:
        return
    profs = [read_profile(env, os.path.join(d, n)) for n in files]
    last = profs[-1]
    if last is None:
        return
    note("last snapshot comments: %s" % last.comments)
    meta = last.comment_num(r"metadata: (\d+) bytes")
    cap = last.comment_num(r"budget (\d+)")
    dropped = last.comment_num(r"overflow: (\d+)")
    buckets = [pr.comment_num(r"buckets: (\d+)") for pr in profs if pr]
    if meta is None or cap is None or dropped is None:
        fail("self-report missing from the comments: %s" % last.comments)
        return
    if cap != budget:
        fail("budget in the comments %d, want %d" % (cap, budget))
    if meta > budget:
        fail("profiler metadata %d B over the budget %d B" % (meta, budget))
    if dropped <= 0:
        fail("no stack was counted as dropped (budget never reached?)")
    if len(set(buckets)) != 1:
        fail("bucket table still growing past the budget: %s" % buckets)
    if not last.has_func("site_snap_deep"):
        fail("site_snap_deep not in the last snapshot")
    # RSS: after the first quarter (budget reached, working sets full),
    # the peak must not keep climbing.
    q = secs / 4.0
    early = [r for t, r in rss if q <= t <= 2 * q]
    late = [r for t, r in rss if t >= 3 * q]
    note("RSS KiB: first %s, quarter 2 max %s, last quarter max %s, "
         "samples %d" % (rss[0][1] if rss else None,
                         max(early) if early else None,
                         max(late) if late else None, len(rss)))
    if early and late and max(late) > max(early) + 16 * 1024:
        fail("RSS grew by %d KiB between the second and the last quarter"
             % (max(late) - max(early)))
    note("soak: metadata %d B of %d, %s buckets, %d stacks dropped" % (
        meta, budget, buckets[-1], dropped))


CASES = {
    "periodic": case_periodic,
    "burst": case_burst,
    "kill9": case_kill9,
    "unwritable": case_unwritable,
    "fork": case_fork,
    "reset": case_reset,
    "signal": case_signal,
    "soak": case_soak,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--workload", required=True)
    ap.add_argument("--preload", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--passive", action="store_true")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--threads", type=int, default=8)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    env = Env(a)
    CASES[a.case](env, a)
    pprof_tool.finish()


if __name__ == "__main__":
    main()
