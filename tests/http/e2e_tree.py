#!/usr/bin/python3
"""End-to-end tests of heapprof in real servers' process trees.

Modes (one ctest each):
  privdrop   python3.11 preloaded with HEAPPROF_HTTP changes to nobody, then
             allocates: its heap names python's functions and stderr has no
             symbolize error (/proc/self/auxv is root's after the change).
  memcached  Debian's memcached -u nobody: its libc and libevent frames are
             named (memcached itself is stripped).
  prefork    a parent with 8 idle forked workers (tests/http/prefork.c): the
             parent's endpoint serves all nine processes' heap, allocs and
             delta_heap, samples labelled pid; ?pid=N one of them (also
             debug=1 text); a seconds=N delta over the tree; bad pids.
  idle       the same tree whose workers never call malloc after the fork
             (write and pause only): each is in the parent's merged heap
             under its pid (it holds the parent's blocks) all the same.
  kill9      the same tree with one worker stopped (SIGSTOP, so it cannot
             answer) and then killed with -9 mid-request: the request ends
             at once with the others, a stuck worker costs at most the
             collection timeout, and the parent keeps serving.

  postgres   Debian's postgresql 15 (initdb in a temporary directory, run
             as the postgres user, loopback, free ports) preloaded with
             HEAPPROF_HTTP: the postmaster's allocs profile shows an idle
             psql session's backend (PostgresMain, palloc and
             AllocSetContextCreateInternal under its pid) while pgbench -C forks a backend per
             transaction.

  chain      a shell script that runs shells that run python (as a pyenv
             shim does), everything preloaded with HEAPPROF_HTTP: the first
             process listens, the others join its tree, and stderr has no
             heapprof line at all (one "in use" line per process before).

privdrop, memcached and postgres skip (77) when not root or the program is
absent.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_http as h  # noqa: E402
import pprof_tool  # noqa: E402
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


def wait_memcached(port, srv, timeout=20):
    """Until memcached answers "version" (its event loop runs)."""
    end = time.time() + timeout
    while time.time() < end:
        if not srv.alive():
            raise SystemExit("FAIL: memcached exited:\n" + srv.output())
        try:
            with socket.create_connection(("127.0.0.1", port), 2) as c:
                c.sendall(b"version\r\n")
                if c.recv(100).startswith(b"VERSION"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("FAIL: memcached not answering on %d" % port)


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
        wait_memcached(mport, srv)
        names = text_frames(base)
        expect_named(names, ["event_base_new_with_config", "event_add",
                             "getpwnam", "__libc_start_main"],
                     "memcached -u nobody")
        expect_quiet(srv, "memcached -u nobody")
    finally:
        srv.stop()


TOL = 0.15
MIB = 1 << 20


def pid_of(labels):
    v = labels.get("pid")
    return int(v[0].strip("[]")) if v else None


def check_site(prof, pid, site, want, label, t="inuse_space"):
    sums = prof.by_leaf(lambda l: pid_of(l) == pid)
    got = sums.get(site, [0, 0, 0, 0])[h.TYPES.index(t)]
    msg = "%s: pid %d %s %s = %d, want %d" % (label, pid, site, t, got, want)
    if abs(got - want) <= TOL * want:
        note("ok   " + msg)
    else:
        fail(msg)


def start_prefork(a, workers=8, idle=False):
    info_path = os.path.join(a.workdir, "tree.json")
    port = h.free_port()
    env = h.clean_env({"LD_PRELOAD": a.preload, "HEAPPROF_RATE": "4096",
                       "HEAPPROF_HTTP": "127.0.0.1:%d" % port})
    srv = h.Server([a.workload, info_path, str(workers)] +
                   (["idle"] if idle else []), env,
                   os.path.join(a.workdir, "log"))
    h.wait_file(info_path, srv)
    info = json.load(open(info_path))
    base = "http://127.0.0.1:%d" % port
    h.wait_http(base + "/debug/pprof/", srv, "prefork parent")
    return srv, info, base


def stop_tree(srv, info):
    for w in info["workers"] if info else []:
        try:
            os.kill(w, signal.SIGKILL)
        except OSError:
            pass
    srv.stop()


def mode_prefork(a):
    srv, info = None, None
    try:
        srv, info, base = start_prefork(a)
        parent, workers = info["pid"], info["workers"]
        prof = h.fetch(base + "/debug/pprof/heap", label="tree heap")
        if prof:
            pids = {pid_of(l) for l in prof.labels}
            if pids != set([parent] + workers):
                fail("tree heap: pids %s, want %s" %
                     (sorted(p or 0 for p in pids), sorted([parent] + workers)))
            else:
                note("ok   tree heap: every sample labelled, all 9 pids")
            # Go's heap profiles have no duration; merged snapshots taken
            # moments apart are still a point in time.
            if prof.duration is not None:
                fail("tree heap: Duration %s" % prof.duration)
            check_site(prof, parent, "parent_site", 4 * MIB, "tree heap")
            for w in workers:
                check_site(prof, w, "worker_site", 2 * MIB, "tree heap")
                # The parent's blocks are in each worker's memory too.
                check_site(prof, w, "parent_site", 4 * MIB, "tree heap")
        w = workers[3]
        prof = h.fetch(base + "/debug/pprof/allocs?pid=%d" % w,
                       label="one worker's allocs")
        if prof:
            pids = {pid_of(l) for l in prof.labels}
            if pids != {w}:
                fail("?pid=%d: pids %s" % (w, pids))
            check_site(prof, w, "worker_site", 2 * MIB, "?pid=N allocs",
                       t="alloc_space")
        prof = h.fetch(base + "/debug/pprof/delta_heap", label="tree delta")
        if prof:
            check_site(prof, workers[0], "worker_site", 2 * MIB,
                       "tree delta_heap (first)", t="alloc_space")
        prof = h.fetch(base + "/debug/pprof/allocs", ["-seconds", "2"],
                       label="tree allocs -seconds 2")
        if prof and prof.duration is None:
            fail("tree allocs -seconds 2: no Duration")
        elif prof:
            note("ok   a seconds=2 delta over the tree (%d samples, %s)" %
                 (len(prof.samples), prof.duration))
        st, _, body = h.http(base + "/debug/pprof/heap?debug=1&pid=%d" % w)
        if st != 200 or b"worker_site" not in body:
            fail("debug=1&pid=%d: %d %r" % (w, st, body[:200]))
        else:
            note("ok   debug=1 text of one worker")
        for q, want in (("pid=1", 404), ("pid=x", 400), ("pid=0", 400)):
            st, _, body = h.http(base + "/debug/pprof/heap?" + q)
            if st != want:
                fail("?%s: %d, want %d (%r)" % (q, st, want, body[:100]))
            else:
                note("ok   ?%s: %d %s" % (q, st, body.decode().strip()))
        lines = [l for l in srv.output().splitlines() if "heapprof" in l]
        if lines:
            fail("the tree logged: %r" % lines)
    finally:
        stop_tree(srv, info)


def mode_idle(a):
    srv, info = None, None
    try:
        srv, info, base = start_prefork(a, workers=4, idle=True)
        parent, workers = info["pid"], info["workers"]
        # No worker allocates after the fork, ever: waiting cannot help it
        # join, only a slow machine's agents be accepted late. Each request
        # waits for every answer up to the owner's own 5 s deadline.
        deadline = time.time() + 30
        while True:
            prof = h.fetch(base + "/debug/pprof/heap", label="tree heap")
            if prof is None:
                return
            pids = {pid_of(l) for l in prof.labels}
            if pids == set([parent] + workers) or time.time() > deadline:
                break
        if pids != set([parent] + workers):
            fail("idle workers: pids %s in the merged heap, want %s" %
                 (sorted(p or 0 for p in pids), sorted([parent] + workers)))
        else:
            note("ok   4 workers idle since the fork: all in the merged heap")
            for w in workers:
                check_site(prof, w, "parent_site", 4 * MIB, "idle worker")
        lines = [l for l in srv.output().splitlines() if "heapprof" in l]
        if lines:
            fail("the tree logged: %r" % lines)
    finally:
        stop_tree(srv, info)


def timed_heap(base, out):
    t0 = time.time()
    out["prof"] = h.fetch(base + "/debug/pprof/heap", label="tree heap")
    out["secs"] = time.time() - t0


def asked(pid):
    """True once a connection to pid's tree agent waits in its backlog: the
    queued socket shows in /proc/net/unix under the agent's address too."""
    name = "@heapprof-tree-%d" % pid
    with open("/proc/net/unix") as f:
        return sum(1 for line in f if line.rstrip().endswith(name)) >= 2


def mode_kill9(a):
    srv, info = None, None
    try:
        srv, info, base = start_prefork(a)
        parent, workers = info["pid"], info["workers"]
        stuck, gone = workers[0], workers[1]
        os.kill(stuck, signal.SIGSTOP)
        os.kill(gone, signal.SIGSTOP)
        out = {}
        t = threading.Thread(target=timed_heap, args=(base, out))
        t.start()
        pprof_tool.wait_until(lambda: asked(gone),
                              "the owner to ask the stopped worker")
        os.kill(gone, signal.SIGKILL)   # mid-request, while it is asked
        t.join(60)
        prof = out.get("prof")
        if prof:
            pids = {pid_of(l) for l in prof.labels}
            want = set([parent] + workers[2:])
            if pids != want:
                fail("with a stuck and a killed worker: pids %s, want %s" %
                     (sorted(p or 0 for p in pids), sorted(want)))
            else:
                note("ok   the stuck and the killed worker are left out, "
                     "the 7 others merged")
        # The collection's deadline is 5 s; go tool pprof adds its own.
        if out.get("secs", 99) > 12:
            fail("a stuck worker cost the request %.1f s" % out["secs"])
        else:
            note("ok   a stuck worker cost the request %.1f s" % out["secs"])
        os.kill(stuck, signal.SIGCONT)
        # Until it answers within a request's deadline again (it first
        # drops the request it was stopped with).
        want = set([parent, stuck] + workers[2:])
        end, pids = time.time() + 60, set()
        while time.time() < end and pids != want:
            timed_heap(base, out)
            prof = out.get("prof")
            pids = {pid_of(l) for l in prof.labels} if prof else set()
        if pids != want:
            fail("after SIGCONT: pids %s, want %s" % (pids, want))
        else:
            note("ok   the resumed worker answers again (%.1f s)" %
                 out["secs"])
        if not srv.alive():
            fail("the parent died")
    finally:
        stop_tree(srv, info)


PG_BIN = "/usr/lib/postgresql/15/bin"


def as_postgres():
    import pwd
    pw = pwd.getpwnam("postgres")
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def describe_tree(root):
    """pid, state, wait channel and threads of root's descendants: where a
    hung process waits, for a failure message."""
    rows = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
            fields = st[st.rindex(")") + 2:].split()
            if int(fields[1]) != root and int(d) != root:
                continue
            with open("/proc/%s/wchan" % d) as f:
                wchan = f.read()
            threads = len(os.listdir("/proc/%s/task" % d))
        except (OSError, ValueError):
            continue
        rows.append("%s %s %s threads=%d" % (d, fields[0], wchan, threads))
    return "; ".join(rows)


def mode_postgres(a):
    need_root()
    if not os.path.exists(os.path.join(PG_BIN, "postgres")):
        skip("postgresql 15 not found (scripts/deps.sh installs it)")
    ids = as_postgres()
    data = os.path.join(a.workdir, "pg")
    os.chmod(a.workdir, 0o755)
    os.makedirs(data, 0o700)
    os.chown(data, ids["user"], ids["group"])
    env = h.clean_env({})
    out = open(os.path.join(a.workdir, "initdb.log"), "w")
    if subprocess.run([os.path.join(PG_BIN, "initdb"), "-D", data, "-A",
                       "trust"], env=env, stdout=out, stderr=out,
                      **ids).returncode != 0:
        raise SystemExit("FAIL: initdb failed, see " + out.name)
    port, pgport = h.free_port(), h.free_port()
    log = open(os.path.join(a.workdir, "log"), "w+")
    penv = h.clean_env({"LD_PRELOAD": a.preload, "HEAPPROF_RATE": "4096",
                        "HEAPPROF_HTTP": "127.0.0.1:%d" % port})
    pg = subprocess.Popen([os.path.join(PG_BIN, "postgres"), "-D", data,
                           "-p", str(pgport), "-k", data, "-c",
                           "listen_addresses=127.0.0.1"], env=penv,
                          stdout=log, stderr=subprocess.STDOUT, **ids)
    psql = bench = None
    try:
        base = "http://127.0.0.1:%d" % port
        h.wait_http(base + "/debug/pprof/", None, "postmaster")
        cli = [os.path.join(PG_BIN, "psql"), "-h", data, "-p", str(pgport),
               "-d", "postgres", "-At"]
        end = time.time() + 30
        while subprocess.run(cli + ["-c", "select 1"], env=env,
                             capture_output=True, **ids).returncode != 0:
            if time.time() > end or pg.poll() is not None:
                raise SystemExit("FAIL: postgres not accepting connections")
            time.sleep(0.2)
        # An idle session: its backend allocates nothing while asked.
        psql = subprocess.Popen(cli, env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, **ids)
        psql.stdin.write("select pg_backend_pid();\n"
                         "select length(string_agg(relname, ',')) from "
                         "pg_class, generate_series(1, 200);\n")
        psql.stdin.flush()
        backend = int(psql.stdout.readline())
        psql.stdout.readline()
        pgb = os.path.join(PG_BIN, "pgbench")
        subprocess.run([pgb, "-i", "-s", "1", "-h", data, "-p", str(pgport),
                        "postgres"], env=env, capture_output=True, **ids)
        bench = subprocess.Popen([pgb, "-C", "-c", "2", "-T", "5", "-S",
                                  "-h", data, "-p", str(pgport), "postgres"],
                                 env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, **ids)
        prof = h.fetch(base + "/debug/pprof/allocs", label="postmaster tree")
        if prof:
            pids = {pid_of(l) for l in prof.labels}
            if pg.pid not in pids or backend not in pids:
                fail("tree allocs: pids %s lack postmaster %d or backend %d" %
                     (sorted(p or 0 for p in pids), pg.pid, backend))
            names = set()
            for (vals, locs), labels in zip(prof.samples, prof.labels):
                if pid_of(labels) == backend:
                    names.update(prof.names(locs))
            # AllocSetAlloc, under palloc, is static in Debian's stripped
            # postgres 15: a '??' frame without postgresql-15-dbgsym.
            expect_named(names, ["PostgresMain", "palloc",
                                 "AllocSetContextCreateInternal"],
                         "the idle backend %d in the postmaster's tree" %
                         backend)
        try:
            bench.wait(60)
        except subprocess.TimeoutExpired:
            fail("pgbench -T 5 still running after 60 s; postgres's "
                 "processes: %s" % describe_tree(pg.pid))
        if pg.poll() is not None:
            fail("postgres exited: " + open(log.name).read()[-2000:])
        lines = [l for l in open(log.name).read().splitlines()
                 if "heapprof" in l]
        if lines:
            fail("postgres's tree logged: %r" % lines[:5])
    finally:
        for p in (bench, psql):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        if pg.poll() is None:
            pg.send_signal(signal.SIGINT)    # fast shutdown
            try:
                pg.wait(30)
            except subprocess.TimeoutExpired:
                pg.kill()
                pg.wait()


def mode_chain(a):
    py = "/usr/bin/python3.11"
    if not os.path.exists(py):
        skip(py + " not found")
    port = h.free_port()
    env = h.clean_env({"LD_PRELOAD": a.preload,
                       "HEAPPROF_HTTP": "127.0.0.1:%d" % port})
    inner = os.path.join(a.workdir, "inner.sh")
    with open(inner, "w") as f:
        f.write("%s -c 'print(1)'\n/bin/true\n" % py)
    script = ("sh -c 'sh %s; /bin/true'; %s -c 'print(2)'; sh -c /bin/true"
              % (inner, py))
    p = subprocess.run(["/bin/sh", "-c", script], env=env,
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0 or p.stdout.split() != ["1", "2"]:
        fail("chain: rc %d stdout %r stderr %r" %
             (p.returncode, p.stdout, p.stderr[-500:]))
    lines = [l for l in p.stderr.splitlines() if "heapprof" in l]
    if lines:
        fail("chain: %d heapprof line(s) on stderr: %r" %
             (len(lines), lines[:5]))
    else:
        note("ok   a script chain of shells and pythons: no heapprof line")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["privdrop", "memcached", "prefork", "idle",
                                     "kill9", "postgres", "chain"])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--preload", required=True)
    ap.add_argument("--workload")
    a = ap.parse_args()
    pprof_tool.run_in_fresh_workdir(globals()["mode_" + a.mode], a)


if __name__ == "__main__":
    main()
