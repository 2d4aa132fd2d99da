"""The Python tests' harness: checks that fail and go on (fail, note,
FAILURES), a free port, waiting for a condition instead of sleeping
(wait_for), and reading profiles through the real `go tool pprof`: one
parser of its `-raw` text and one of its `-top` rows.

`go tool pprof -raw` prints the decoded profile: a header (PeriodType,
Period, Duration, Comment lines), then "Samples:" with the sample types on
one line ("[dflt]" marks the default), one line per sample ("v1 v2 ...:
loc ids", leaf first) optionally followed by label lines ("key:[value]"),
then "Locations" ("id: 0xaddr M=mapping func file:line s=start", inlined
callers on the following indented lines) and "Mappings".
"""

import argparse
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request

SAMPLE_RE = re.compile(r"^((?:\s+-?\d+)+):((?:\s*\d+)*)\s*$")
LABEL_RE = re.compile(r"(\S+?):\[([^\]]*)\]")
LOC_RE = re.compile(r"^\s*(\d+): (0x[0-9a-f]+) (?:M=(\d+) )?(?:\[F\] )?(.*)$")
MAP_RE = re.compile(r"^\s*(\d+): 0x[0-9a-f]+/0x[0-9a-f]+/0x[0-9a-f]+ (\S*)"
                    r"(?: ([0-9a-f]{16,}))?")
LINE_RE = re.compile(r"^(.+?) (\S*:\d+) s=\d+(?:\(.*\))?$")
# An inlined caller's line is indented past the location id column.
INLINE_INDENT = " " * 13

TOP_ROW_RE = re.compile(r"^\s*(-?[\d.]+)B?\s+[\d.]+%\s+[\d.]+%\s+"
                        r"(-?[\d.]+)B?\s+[\d.]+%\s+(\S+)")


# ------------------------------------------------------------ the harness

# Every failed check of this run; a checker exits 1 when it is not empty.
FAILURES = []


def fail(msg):
    """A failed check: said at once, counted, and the run goes on."""
    FAILURES.append(msg)
    print("FAIL: " + msg, flush=True)


def fatal(msg):
    """A failed check the run cannot go on from."""
    fail(msg)
    raise SystemExit(1)


def note(msg):
    print(msg, flush=True)


def finish():
    """Ends a checker: exit 1 naming how many checks failed, else PASS."""
    if FAILURES:
        print("%d failure(s)" % len(FAILURES))
        sys.exit(1)
    print("PASS")


def workload_parser():
    """The arguments of a checker that runs one workload (CMake's
    hp_e2e_view_test): --workload, --workdir, --rate, --preload; a checker
    adds its own before parsing."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--rate", type=int, required=True)
    ap.add_argument("--preload", help="libheapprof.so")
    return ap


def end_checks(fails, ok_message):
    """Ends a checker that gathered its failures in a list: the first ten
    said, exit 1; else ok_message."""
    for f in fails[:10]:
        print("FAIL: " + f)
    if fails:
        sys.exit(1)
    print(ok_message)


def run_in_fresh_workdir(check, args):
    """Runs check(args) in an emptied args.workdir (pprof's saved profiles
    under it unless PPROF_TMPDIR is set), then finish()."""
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    os.environ.setdefault("PPROF_TMPDIR", os.path.join(args.workdir, "pprof"))
    check(args)
    finish()


def lib_workload_main(check):
    """main() of a checker run as CHECKER --workload W --lib LIBHEAPPROF
    --workdir D: check(args) in a fresh D, then finish()."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", required=True)
    ap.add_argument("--lib", required=True)
    ap.add_argument("--workdir", required=True)
    run_in_fresh_workdir(check, ap.parse_args())


class StdinHeld:
    """A workload that runs until its stdin closes (a server under test):
    its stdout lines are gathered as they come, in self.out."""

    def __init__(self, cmd, env):
        self.p = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.out = []
        self._reader = threading.Thread(
            target=lambda: self.out.extend(self.p.stdout), daemon=True)
        self._reader.start()

    def wait_lines(self, ready, what):
        """Waits until ready(lines) or the workload exits; True if it
        still runs."""
        wait_until(lambda: self.p.poll() is not None or ready(self.out), what)
        return self.p.poll() is None

    def finish(self):
        """Closes its stdin and waits (60 s, then kills it): (exit code,
        stdout, stderr), also printed."""
        self.p.stdin.close()
        try:
            self.p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self._reader.join(timeout=10)
        out, err = "".join(self.out), self.p.stderr.read()
        print("exit %d\nstdout:\n%sstderr:\n%s" % (self.p.returncode, out, err))
        return self.p.returncode, out, err


def fetch(url, path, timeout=60):
    """GET url into the file path."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        with open(path, "wb") as f:
            f.write(resp.read())


def free_port():
    """A TCP port free now on 127.0.0.1, below the kernel's ephemeral range
    (32768+ here): a port from bind(0) can be taken as the source port of
    any client connection before the server binds it."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise SystemExit("FAIL: no free port")


def wait_for(cond, timeout, interval=0.02):
    """Poll cond() until it returns something true, and return that; None
    once timeout seconds have passed. The tests synchronise on what they
    can observe (a file, a line, /proc), never on a fixed sleep."""
    end = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() >= end:
            return None
        time.sleep(interval)


def wait_until(cond, what, timeout=60.0):
    """wait_for, and a fatal failure naming what if it times out."""
    got = wait_for(cond, timeout)
    if not got:
        fatal("timed out waiting for " + what)
    return got


def base_name(name):
    """GCC's clones (f.constprop.0, f.isra.0, f.part.0) count as f."""
    return re.sub(r"\.(constprop|isra|part|cold)\.\d+$", "", name)


class RawProfile:
    def __init__(self):
        self.period_type = None
        self.period = None
        self.duration = None
        self.comments = []
        self.types = []        # ["alloc_objects/count", ...]
        self.default = None    # the type marked [dflt], if any
        self.samples = []      # (values, [location ids, leaf first])
        self.labels = []       # per sample: {key: [values]}
        self.locs = {}         # location id -> [function names, inner first]
        self.loc_mapping = {}  # location id -> mapping id (or None)
        self.maps = {}         # mapping id -> file
        self.build_ids = {}    # mapping id -> build id ("" if none)

    def names(self, ids):
        """Function names of a sample's stack, leaf first ("??" unknown)."""
        out = []
        for lid in ids:
            out.extend(self.locs.get(lid) or ["??"])
        return out

    def leaf(self, ids):
        names = self.locs.get(ids[0]) if ids else None
        return base_name(names[0]) if names else None

    def functions(self):
        return {base_name(n) for names in self.locs.values() for n in names}

    def by_leaf(self, where=None):
        """leaf function -> summed values; where(labels) selects samples."""
        sums = {}
        for (vals, ids), labels in zip(self.samples, self.labels):
            if where is not None and not where(labels):
                continue
            acc = sums.setdefault(self.leaf(ids), [0] * len(vals))
            for i, v in enumerate(vals):
                acc[i] += v
        return sums

    def comment_num(self, pattern):
        """The integer group of the first comment matching pattern."""
        for c in self.comments:
            m = re.search(pattern, c)
            if m:
                return int(m.group(1))
        return None


def parse_raw(text):
    prof = RawProfile()
    section = "head"
    cur = None
    for line in text.splitlines():
        if line.startswith("Comment: "):
            prof.comments.append(line[len("Comment: "):])
            continue
        if section == "head":
            if line.startswith("PeriodType:"):
                prof.period_type = line.split(":", 1)[1].strip()
            elif line.startswith("Period:"):
                prof.period = int(line.split(":", 1)[1])
            elif line.startswith("Duration:"):
                prof.duration = line.split(":", 1)[1].strip()
            elif line == "Samples:":
                section = "types"
        elif section == "types":
            for tok in line.split():
                if tok.endswith("[dflt]"):
                    tok = tok[:-len("[dflt]")]
                    prof.default = tok
                prof.types.append(tok)
            section = "samples"
        elif section == "samples":
            if line == "Locations":
                section = "locs"
                continue
            m = SAMPLE_RE.match(line)
            if m:
                prof.samples.append(([int(v) for v in m.group(1).split()],
                                     [int(v) for v in m.group(2).split()]))
                prof.labels.append({})
            elif prof.samples and LABEL_RE.search(line):
                for key, vals in LABEL_RE.findall(line):
                    prof.labels[-1].setdefault(key, []).extend(vals.split())
        elif section == "locs":
            if line == "Mappings":
                section = "maps"
                continue
            m = LOC_RE.match(line)
            if m and not line.startswith(INLINE_INDENT):
                cur = int(m.group(1))
                prof.loc_mapping[cur] = int(m.group(3)) if m.group(3) else None
                prof.locs[cur] = []
                rest = m.group(4).strip()
            else:
                rest = line.strip()
            if rest and cur is not None:
                # "name file:line s=N[(system name)]" or "??"; C++ names
                # may hold spaces ("(anonymous namespace)::f").
                m = LINE_RE.match(rest)
                prof.locs[cur].append(m.group(1) if m else rest.split()[0])
        elif section == "maps":
            m = MAP_RE.match(line)
            if m:
                prof.maps[int(m.group(1))] = m.group(2)
                prof.build_ids[int(m.group(1))] = m.group(3) or ""
    return prof


def go_pprof(args, src, env=None, timeout=120):
    """Run `go tool pprof ARGS SRC`; the CompletedProcess (text). Without
    go the test cannot read profiles: it says skipped (exit 77)."""
    if shutil.which("go") is None:
        print("skipped: go tool pprof is not installed "
              "(scripts/deps.sh installs golang-go)")
        sys.exit(77)
    return subprocess.run(["go", "tool", "pprof"] + list(args) + [src],
                          env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout)


def top_flat(src, index, env=None, hide=None):
    """Flat value per function from `go tool pprof -top` (exact with
    -unit=B, which pprof also applies, harmlessly, to the count types).
    Returns (dict, the CompletedProcess)."""
    args = ["-top", "-nodecount=100000", "-nodefraction=0",
            "-edgefraction=0", "-sample_index=" + index, "-unit=B",
            "-symbolize=none"]
    if hide:
        args.append("-hide=" + hide)
    p = go_pprof(args, src, env)
    flat = {}
    for line in p.stdout.splitlines():
        m = TOP_ROW_RE.match(line)
        if m:
            flat[m.group(3)] = flat.get(m.group(3), 0) + float(m.group(1))
    return flat, p


def run_workload(cmd, rate, preload=None, timeout=120, extra_env=None):
    """Run a test workload with HEAPPROF_RATE=rate (every other HEAPPROF_*
    variable unset but those in extra_env; LD_PRELOAD=preload if given) and
    return its truth: {name: (count, bytes)} from its "truth NAME COUNT
    BYTES" lines. A non-zero exit fails the test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEAPPROF_")}
    env["HEAPPROF_RATE"] = str(rate)
    env.update(extra_env or {})
    if preload:
        env["LD_PRELOAD"] = preload
    p = subprocess.run(cmd, env=env, timeout=timeout, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise SystemExit("FAIL: workload exited %d: %s" % (p.returncode, p.stderr))
    truth = {}
    for line in p.stdout.splitlines():
        f = line.split()
        if len(f) == 4 and f[0] == "truth":
            truth[f[1]] = (int(f[2]), int(f[3]))
    return truth


def libunwind_walks(prof):
    """How many stacks the profile's process walked with libunwind (its
    "heapprof unwinding" comment), or None without that comment."""
    for c in prof.comments:
        m = re.match(r"heapprof unwinding: (\d+) stacks walked by libunwind", c)
        if m:
            return int(m.group(1))
    return None


def tool_env():
    """The environment for go tool pprof: the test's, without LD_PRELOAD."""
    return {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def read_raw(path):
    """The profile at path through `go tool pprof -raw` (never preloaded),
    parsed; a pprof failure fails the test."""
    r = go_pprof(["-raw"], path, env=tool_env())
    if r.returncode != 0:
        raise SystemExit("FAIL: go tool pprof -raw: " + r.stderr)
    return parse_raw(r.stdout)
