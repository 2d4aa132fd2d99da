#!/usr/bin/python3
"""End-to-end tests of heapprof in real servers' process trees.

Modes (one ctest each):
  privdrop   python3.11 preloaded with HEAPPROF_HTTP changes to nobody, then
             allocates: its heap names python's functions and stderr has no
             symbolize error (/proc/self/auxv is root's after the change).
  memcached  Debian's memcached -u nobody: its libc and libevent frames are
             named (memcached itself is stripped).

Each skips (77) when not root or the program is absent.
"""

import argparse
import os
import shutil
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_http as h  # noqa: E402
from e2e_http import fail, note  # noqa: E402


def skip(why):
    print(why + ": skipping")
    sys.exit(77)


def need_root():
    if os.geteuid() != 0:
        skip("not root (a privilege drop needs one)")


def text_frames(base, path="/debug/pprof/heap?debug=1"):
    """The function names of a debug=1 profile's frame lines."""
    st, _, body = h.http(base + path)
    if st != 200:
        fail("%s: status %d" % (path, st))
        return set()
    names = set()
    for line in body.decode("utf-8", "replace").splitlines():
        f = line.split()
        if line.startswith("#\t0x") and len(f) >= 3:
            names.add(f[2])
    return names


def expect_named(names, want, label):
    missing = [w for w in want if w not in names]
    if missing:
        fail("%s: no frame named %s (named: %s)" %
             (label, missing, sorted(names)[:40]))
    else:
        note("ok   %s names %s" % (label, ", ".join(want)))


def expect_quiet(srv, label):
    bad = [l for l in srv.output().splitlines()
           if "heapprof" in l and ("failed" in l or "denied" in l)]
    if bad:
        fail("%s: stderr %r" % (label, bad))


DROP_PY = r"""
import os, sys, time
os.setgid(65534); os.setuid(65534)
x = [bytearray(1 << 20) for _ in range(50)]
open(sys.argv[1], "w").close()
time.sleep(600)
"""


def mode_privdrop(a):
    need_root()
    py = "/usr/bin/python3.11"
    if not os.path.exists(py):
        skip(py + " not found")
    ready = os.path.join(a.workdir, "ready")
    os.chmod(a.workdir, 0o777)
    port = h.free_port()
    env = h.clean_env({"LD_PRELOAD": a.preload,
                       "HEAPPROF_HTTP": "127.0.0.1:%d" % port})
    srv = h.Server([py, "-c", DROP_PY, ready], env,
                   os.path.join(a.workdir, "log"))
    try:
        h.wait_file(ready, srv)
        base = "http://127.0.0.1:%d" % port
        names = text_frames(base)
        expect_named(names, ["PyByteArray_Resize", "_PyEval_EvalFrameDefault"],
                     "python after setuid(nobody)")
        expect_quiet(srv, "python after setuid(nobody)")
    finally:
        srv.stop()


def mode_memcached(a):
    need_root()
    mc = shutil.which("memcached") or "/usr/bin/memcached"
    if not os.path.exists(mc):
        skip("memcached not found (scripts/deps.sh installs it)")
    port, mport = h.free_port(), h.free_port()
    env = h.clean_env({"LD_PRELOAD": a.preload, "HEAPPROF_RATE": "1",
                       "HEAPPROF_HTTP": "127.0.0.1:%d" % port})
    srv = h.Server([mc, "-u", "nobody", "-l", "127.0.0.1", "-p", str(mport),
                    "-U", "0"], env, os.path.join(a.workdir, "log"))
    try:
        base = "http://127.0.0.1:%d" % port
        h.wait_http(base + "/debug/pprof/", srv, "memcached")
        names = text_frames(base)
        expect_named(names, ["event_base_new_with_config", "event_add",
                             "getpwnam", "__libc_start_main"],
                     "memcached -u nobody")
        expect_quiet(srv, "memcached -u nobody")
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["privdrop", "memcached"])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--preload", required=True)
    a = ap.parse_args()
    shutil.rmtree(a.workdir, ignore_errors=True)
    os.makedirs(a.workdir)
    globals()["mode_" + a.mode](a)
    if h.failures:
        print("%d failure(s)" % len(h.failures))
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()
