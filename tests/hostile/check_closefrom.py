#!/usr/bin/python3
"""heapprof's HTTP endpoint survives a program's closefrom (varnishd and
sshd close every descriptor at the start of main): confined_host
closefrom-serve runs with HEAPPROF_HTTP, reuses the freed numbers for its
own socket pairs, and while it waits the heap profile is fetched twice;
then its socket pairs must be intact.

  check_closefrom.py --workload confined_host --lib libheapprof.so --workdir D
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pprof_tool import (StdinHeld, fail, fatal, fetch, free_port,  # noqa: E402
                        lib_workload_main, read_raw)


def check(args):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEAPPROF_")}
    env.update(LD_PRELOAD=args.lib, HEAPPROF_HTTP="127.0.0.1:%d" % port)
    w = StdinHeld([args.workload, "closefrom-serve"], env)
    try:
        if not w.wait_lines(lambda out: "ready\n" in out,
                            "the program to close its descriptors"):
            fatal("the program exited early")
        for n in range(2):
            path = os.path.join(args.workdir, "heap%d.pb.gz" % n)
            url = "http://127.0.0.1:%d/debug/pprof/heap" % port
            try:
                fetch(url, path)
            except OSError as e:
                fail("GET %s after the closefrom: %s" % (url, e))
                continue
            if not read_raw(path).samples:
                fail("the profile after the closefrom has no samples")
    finally:
        rc, out, _ = w.finish()
    if rc != 0 or "16 of 16 socket pairs intact" not in out:
        fail("the program's own sockets were disturbed")


if __name__ == "__main__":
    lib_workload_main(check)
