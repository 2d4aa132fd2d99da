#!/usr/bin/python3
"""heapprof's HTTP endpoint survives a program's closefrom (varnishd and
sshd close every descriptor at the start of main): confined_host
closefrom-serve runs with HEAPPROF_HTTP, reuses the freed numbers for its
own socket pairs, and while it waits the heap profile is fetched twice;
then its socket pairs must be intact.

  check_closefrom.py --workload confined_host --lib libheapprof.so --workdir D
"""
import argparse
import os
import subprocess
import sys
import threading
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pprof_tool import (fail, fatal, free_port, read_raw,  # noqa: E402
                        run_in_fresh_workdir, wait_until)


def check(args):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEAPPROF_")}
    env.update(LD_PRELOAD=args.lib, HEAPPROF_HTTP="127.0.0.1:%d" % port)
    p = subprocess.Popen([args.workload, "closefrom-serve"], env=env,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    out = []
    reader = threading.Thread(target=lambda: out.extend(p.stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: p.poll() is not None or "ready\n" in out,
                   "the program to close its descriptors")
        if p.poll() is not None:
            fatal("the program exited early: %s" % p.stderr.read())
        for n in range(2):
            path = os.path.join(args.workdir, "heap%d.pb.gz" % n)
            url = "http://127.0.0.1:%d/debug/pprof/heap" % port
            try:
                with urllib.request.urlopen(url, timeout=30) as resp:
                    open(path, "wb").write(resp.read())
            except OSError as e:
                fail("GET %s after the closefrom: %s" % (url, e))
                continue
            prof = read_raw(path)
            if not prof.samples:
                fail("the profile after the closefrom has no samples")
    finally:
        p.stdin.close()
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        reader.join(timeout=10)
    err = p.stderr.read()
    print("exit %d\nstdout:\n%sstderr:\n%s" % (p.returncode, "".join(out), err))
    if p.returncode != 0 or "16 of 16 socket pairs intact" not in "".join(out):
        fail("the program's own sockets were disturbed")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", required=True)
    ap.add_argument("--lib", required=True)
    ap.add_argument("--workdir", required=True)
    run_in_fresh_workdir(check, ap.parse_args())


if __name__ == "__main__":
    main()
