#!/usr/bin/python3
"""A program that chroots itself after start-up (haproxy's `chroot`,
lighttpd's server.chroot) still gets its profiles, with names, from inside
an empty root (no /proc, no libraries there). Exit 77 when the test may not
chroot (not root).

  --case files  chroot_workload writes a profile with heapprof_write_path,
                its child forked inside writes one too, and the exit
                snapshot goes to HEAPPROF_SNAPSHOT_DIR as seen inside the
                root (a line says so).
  --case serve  with HEAPPROF_HTTP: the merged profile holds the child
                forked inside the root (found without /proc), named, and
                ?pid= serves it alone.
"""
import argparse
import glob
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pprof_tool import (StdinHeld, fail, fatal, fetch,  # noqa: E402
                        free_port, read_raw, run_in_fresh_workdir)

SITES = ("site_before_chroot", "site_after_chroot")


def check_profile(path, what, workload, sites=SITES):
    if not os.path.exists(path):
        fail("%s: no profile at %s" % (what, path))
        return None
    prof = read_raw(path)
    names = {n for frames in prof.locs.values() for n in frames}
    for site in sites:
        if site not in names:
            fail("%s: %s not named (functions: %s)"
                 % (what, site, sorted(names)[:20]))
    mapped = [i for i, p in prof.maps.items() if p == workload]
    if not mapped or not prof.build_ids[mapped[0]]:
        fail("%s: no mapping with a build id for %s (mappings: %s)"
             % (what, workload, prof.maps))
    if not any(c.startswith("process: rss and vm unknown")
               for c in prof.comments):
        fail("%s: no comment saying the process size is unknown" % what)
    return prof


def environment(args, extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HEAPPROF_")}
    env.update(LD_PRELOAD=args.lib, HEAPPROF_RATE="1", **extra)
    return env


def said(r_stdout, r_stderr, returncode):
    """The checks every run gets (its output is printed by the caller);
    exit 77 when the workload may not chroot."""
    if returncode == 77:
        sys.exit(77)
    if "proc hidden" not in r_stdout:
        fail("/proc was visible inside the root: the case is not tested")
    if "cannot load" in r_stderr:
        fail("a library could not be loaded inside the root")


def case_files(args, root, workload):
    snaps = os.path.join(args.workdir, "snaps")
    os.makedirs(snaps)  # checked at start, outside the root
    os.makedirs(root + snaps)  # where the exit snapshot lands, inside
    env = environment(args, dict(HEAPPROF_SNAPSHOT_DIR=snaps,
                                 HEAPPROF_SNAPSHOT_AT_EXIT="1"))
    r = subprocess.run([workload, root, "/inside.pb.gz", "/child.pb.gz"],
                       env=env, capture_output=True, text=True, timeout=120)
    print("exit %s\nstdout:\n%sstderr:\n%s" % (r.returncode, r.stdout,
                                               r.stderr))
    said(r.stdout, r.stderr, r.returncode)
    if r.returncode != 0:
        fail("the workload failed")
    if "snapshots go to %s inside %s" % (snaps, root) not in r.stderr:
        fail("no line saying where snapshots go after the chroot")
    check_profile(os.path.join(root, "inside.pb.gz"), "heapprof_write_path",
                  workload)
    check_profile(os.path.join(root, "child.pb.gz"), "child forked inside",
                  workload, SITES + ("site_in_child",))
    exits = glob.glob(os.path.join(root + snaps, "*.pb.gz"))
    if len(exits) != 1:
        fail("exit snapshots inside the root: %s" % exits)
    else:
        check_profile(exits[0], "exit snapshot", workload)


def case_serve(args, root, workload):
    port = free_port()
    env = environment(args, dict(HEAPPROF_HTTP="127.0.0.1:%d" % port))
    w = StdinHeld([workload, root, "/inside.pb.gz", "/child.pb.gz", "serve"],
                  env)
    ready = False
    try:
        ready = w.wait_lines(lambda out: sum("ready" in l for l in out) == 2,
                             "parent and child ready")
        if ready:
            serve_checks(args, workload, port, w.out)
    finally:
        rc, out, err = w.finish()
    said(out, err, rc)  # exit 77 when it may not chroot
    if not ready:
        fatal("the workload exited early")
    if rc != 0:
        fail("the workload failed")


def serve_checks(args, workload, port, out):
    child = int(next(l for l in out if l.startswith("child ready")).split()[2])
    base = "http://127.0.0.1:%d/debug/pprof/heap" % port
    merged = os.path.join(args.workdir, "merged.pb.gz")
    fetch(base, merged)
    prof = check_profile(merged, "merged profile", workload,
                         SITES + ("site_in_child",))
    pids = ({v for labels in prof.labels for v in labels.get("pid", [])}
            if prof else set())
    if str(child) not in pids or len(pids) != 2:
        fail("merged profile's pids %s: not this process and child %d"
             % (sorted(pids), child))
    alone = os.path.join(args.workdir, "child.pb.gz")
    fetch("%s?pid=%d" % (base, child), alone)
    check_profile(alone, "?pid= the child", workload, ("site_in_child",))


def check(args):
    root = os.path.join(args.workdir, "root")
    os.makedirs(root)
    workload = os.path.realpath(args.workload)
    {"files": case_files, "serve": case_serve}[args.case](args, root, workload)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", choices=("files", "serve"), required=True)
    ap.add_argument("--workload", required=True)
    ap.add_argument("--lib", required=True)
    ap.add_argument("--workdir", required=True)
    run_in_fresh_workdir(check, ap.parse_args())


if __name__ == "__main__":
    main()
