#!/usr/bin/python3
"""HEAPPROF_SNAPSHOT_PEAK and HEAPPROF_LEAK_REPORT end to end.

  --case peak   the climb workload writes exactly one -peak.pb.gz (the
                newest replaces the others) whose in-use profile holds the
                64 MiB high-water mark at peak_site_climb, not what was in
                use at exit.
  --case leak   the leak report reaches stderr although the program closed
                it, names leak_site_big and leak_site_small with about
                3 MiB and 1 MiB, never freed_site; the exit snapshot is
                written (a snapshot directory is set).
  --case clean  a program that freed everything: one short line.
  --case stripped  the leak workload stripped of its symbols: frames with
                no name give their file and address there, which addr2line
                on the unstripped workload turns into leak_site_big.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pprof_tool import fatal as fail, go_pprof, tool_env  # noqa: E402


def run(args, mode, env_extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HEAPPROF_") and k != "LD_PRELOAD"}
    env.update(env_extra)
    env["LD_PRELOAD"] = args.lib
    r = subprocess.run([args.workload, mode], env=env, capture_output=True,
                       text=True, timeout=300)
    print("%s: exit %d\nstdout: %s\nstderr:\n%s" % (mode, r.returncode,
                                                    r.stdout, r.stderr))
    return r


def pprof_top(args, path, index):
    env = dict(tool_env(), PPROF_TMPDIR=os.path.join(args.workdir, "pprof"))
    r = go_pprof(["-top", "-nodefraction=0", "-unit=MB",
                  "-sample_index=" + index], path, env)
    if r.returncode != 0:
        fail("go tool pprof: " + r.stderr)
    print(r.stdout)
    return r.stdout


def flat_mb(top, fn):
    for line in top.splitlines():
        f = line.split()
        if f and f[-1] == fn:
            return float(f[0].rstrip("MB"))
    return 0.0


def case_peak(args):
    snaps = os.path.join(args.workdir, "snaps")
    os.makedirs(snaps)
    r = run(args, "climb", {"HEAPPROF_SNAPSHOT_DIR": snaps,
                            "HEAPPROF_SNAPSHOT_PEAK": "1",
                            "HEAPPROF_SNAPSHOT_PEAK_STEP": "8m",
                            "HEAPPROF_RATE": "64k"})
    if r.returncode != 0 or r.stdout != "climbed\n":
        fail("the workload's output or exit status changed")
    peaks = [n for n in os.listdir(snaps) if n.endswith("-peak.pb.gz")]
    if len(peaks) != 1 or not re.fullmatch(
            r"heap-\d+-\d{8}T\d{6}Z(-\d+)?-peak\.pb\.gz", peaks[0]):
        fail("expected one peak file, found %r" % os.listdir(snaps))
    if shutil.which("go") is None:
        print("go not found: the peak file's contents are not read")
        return
    top = pprof_top(args, os.path.join(snaps, peaks[0]), "inuse_space")
    climb = flat_mb(top, "peak_site_climb")
    if climb < 56:
        fail("peak_site_climb holds %.1f MB in the peak file, want ~64" % climb)
    if flat_mb(top, "peak_site_after") > climb / 8:
        fail("the peak file shows the exit state, not the peak")


def case_leak(args):
    snaps = os.path.join(args.workdir, "snaps")
    os.makedirs(snaps)
    r = run(args, "leak", {"HEAPPROF_LEAK_REPORT": "1", "HEAPPROF_RATE": "1",
                           "HEAPPROF_SNAPSHOT_DIR": snaps})
    if r.returncode != 0 or r.stdout != "leaked\n":
        fail("the workload's output or exit status changed")
    m = re.search(r"leak report: ([\d.]+) MiB in (\d+) objects still in use",
                  r.stderr)
    if m is None:
        fail("no leak report on stderr (the program closed it)")
    if not 3.9 <= float(m.group(1)) <= 4.2 or int(m.group(2)) < 7:
        fail("leak report totals: %s MiB in %s objects, want 4 MiB in 7+"
             % (m.group(1), m.group(2)))
    for site in ("leak_site_big", "leak_site_small", "main"):
        if site not in r.stderr:
            fail(site + " not in the leak report")
    if "freed_site" in r.stderr:
        fail("freed memory shows in the leak report")
    big = r.stderr.index("leak_site_big")
    if big > r.stderr.index("leak_site_small"):
        fail("sites not ordered by bytes")
    if not any(n.endswith(".pb.gz") and "-peak" not in n
               for n in os.listdir(snaps)):
        fail("no exit snapshot written with the leak report")


def case_stripped(args):
    strip, addr2line = shutil.which("strip"), shutil.which("addr2line")
    if not strip or not addr2line:
        print("SKIP: strip and addr2line (binutils) are needed")
        sys.exit(77)
    stripped = os.path.join(args.workdir, "workload.stripped")
    subprocess.run([strip, "-o", stripped, args.workload], check=True)
    r = run(argparse.Namespace(**dict(vars(args), workload=stripped)),
            "leak", {"HEAPPROF_LEAK_REPORT": "1", "HEAPPROF_RATE": "1"})
    if r.returncode != 0 or r.stdout != "leaked\n":
        fail("the workload's output or exit status changed")
    frames = re.findall(r"#\d+ 0x[0-9a-f]+ \((\S+)\+(0x[0-9a-f]+)\)", r.stderr)
    if not frames or any(f != stripped for f, _ in frames):
        fail("unnamed frames do not give the stripped file: %r" % frames)
    names = subprocess.run([addr2line, "-f", "-e", args.workload] +
                           [a for _, a in frames], capture_output=True,
                           text=True, check=True).stdout.split()
    print("addr2line: %s" % " ".join(names))
    if "leak_site_big" not in names:
        fail("the addresses given do not lead addr2line to leak_site_big")


def case_clean(args):
    r = run(args, "clean", {"HEAPPROF_LEAK_REPORT": "1", "HEAPPROF_RATE": "1"})
    if r.returncode != 4 or r.stdout != "clean\n":
        fail("the workload's output or exit status changed")
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    if len(lines) != 1 or "leak report: nothing in use at exit" not in lines[0]:
        fail("expected one short line, got %r" % lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", required=True,
                    choices=("peak", "leak", "clean", "stripped"))
    ap.add_argument("--lib", required=True)
    ap.add_argument("--workload", required=True)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    {"peak": case_peak, "leak": case_leak, "clean": case_clean,
     "stripped": case_stripped}[args.case](args)
    print("check_peak_leak: ok")


if __name__ == "__main__":
    main()
