#!/usr/bin/python3
"""own_zlib exports a deflateReset of its own: heapprof's profile must
still be written whole and read back (zlib loaded deep-bound).

  check_own_zlib.py --workload own_zlib --lib libheapprof.so --workdir D
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pprof_tool import fail, lib_workload_main, read_raw  # noqa: E402


def check(args):
    path = os.path.join(args.workdir, "heap.pb.gz")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEAPPROF_")}
    env.update(LD_PRELOAD=args.lib, HEAPPROF_RATE="1")
    r = subprocess.run([args.workload, path], env=env, capture_output=True,
                       text=True, timeout=120)
    print("exit %d\nstdout:\n%sstderr:\n%s" % (r.returncode, r.stdout, r.stderr))
    if r.returncode != 0:
        fail("the profile was not written")
        return
    prof = read_raw(path)
    if len(prof.samples) == 0:
        fail("the profile has no samples")


if __name__ == "__main__":
    lib_workload_main(check)
