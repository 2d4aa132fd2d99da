#!/usr/bin/python3
"""End-to-end tests of heapprof's HTTP serving, with the real `go tool pprof`.

Modes (one ctest each):
  listener  http_workload under LD_PRELOAD with HEAPPROF_HTTP: heap, allocs,
            delta_heap, -seconds 2 and debug=1 text with -symbolize=remote,
            each site within +-10 % of the workload's truth (rate 4096);
            then every error path (bad queries, unknown paths, wrong
            methods, garbage bytes, huge headers, slow and idle clients
            over the connection cap) and the listener and host still work.
  unix      the listener on unix:/path (curl --unix-socket).
  inuse     port already taken: one log line, the workload keeps running.
  fork      a forked child has no listener and no copy of the socket; the
            parent keeps serving its own (?pid=) and the tree's profile; the
            child takes the address over when the parent exits.
  nomhd     libmicrohttpd hidden: one log line, no listener, host fine.
  addresses [::1]:port, 0.0.0.0:port (served, one warning line) and a host
            name (one line, no listener, the workload keeps running).
  example   an example server (argv: the binary) mounting the handler:
            go tool pprof heap/allocs/delta_heap/-seconds 2 through it, the
            app keeps answering during seconds=N, error statuses.
  redis     Debian's redis-server under LD_PRELOAD + HEAPPROF_HTTP loaded
            by redis-benchmark: it keeps serving and its heap names redis.
  launcher  tools/heapprof.in (configured): run --http/--rate, --help,
            bad arguments.

Servers bind 127.0.0.1 on free ports and are stopped by their PID.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pprof_tool  # noqa: E402
from pprof_tool import fail, note, free_port, wait_for  # noqa: E402
failures = pprof_tool.FAILURES

SITES = ["site_hold_small", "site_hold_large", "site_churn", "site_mixed"]
TYPES = ["alloc_objects", "alloc_space", "inuse_objects", "inuse_space"]
TOL = 0.10


def clean_env(extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HEAPPROF_") and k != "LD_PRELOAD"}
    env.update(extra)
    return env


class Server:
    """A process started by us, stopped by its PID."""

    def __init__(self, argv, env, log):
        self.log = open(log, "w+")
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        note("started pid %d: %s" % (self.proc.pid, " ".join(argv)))

    def alive(self):
        return self.proc.poll() is None

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        if self.alive():
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def http(url, method="GET", data=None, timeout=30, unix=None):
    """(status, headers dict lower-cased, body bytes)."""
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, \
                r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def wait_http(url, proc, what, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and not proc.alive():
            raise SystemExit("FAIL: %s exited early:\n%s" %
                             (what, proc.output()[-3000:]))
        try:
            st, _, _ = http(url, timeout=2)
            if st == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("FAIL: %s not answering at %s" % (what, url))


def wait_file(path, proc, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(path):
            return
        if not proc.alive():
            raise SystemExit("FAIL: workload exited early:\n" +
                             proc.output()[-3000:])
        time.sleep(0.1)
    raise SystemExit("FAIL: %s never appeared" % path)


# ------------------------------------------------------------- go tool pprof

def go_pprof(args, src, timeout=120):
    return pprof_tool.go_pprof(args, src, timeout=timeout)


def fetch(src, args=(), label=None):
    p = go_pprof(["-raw"] + list(args), src)
    if p.returncode != 0:
        fail("%s: go tool pprof %s failed (%d): %s" %
             (label or src, " ".join(args), p.returncode, p.stderr[-2000:]))
        return None
    prof = pprof_tool.parse_raw(p.stdout)
    if prof.types != ["alloc_objects/count", "alloc_space/bytes",
                      "inuse_objects/count", "inuse_space/bytes"]:
        fail("%s: sample types %s" % (label or src, prof.types))
        return None
    return prof


def check_truth(prof, truth, label, types=TYPES, sites=SITES):
    sums = prof.by_leaf()
    missing = [site for site in sites if site not in sums and
               any(truth[site][t] for t in types)]
    if missing:
        note("%s: no samples with leaf %s; leaves: %s\n%s" % (
            label, missing, sorted(str(k) for k in sums), prof.text[:6000]))
    for site in sites:
        got = sums.get(site)
        for t in types:
            want = truth[site][t]
            g = got[TYPES.index(t)] if got else 0
            if want == 0:
                ok = g == 0
            else:
                ok = abs(g - want) <= TOL * want
            msg = "%s: %s %s = %d, truth %d (%+.1f %%)" % (
                label, site, t, g, want,
                100.0 * (g - want) / want if want else 0)
            if ok:
                note("ok   " + msg)
            else:
                fail(msg)


# ------------------------------------------------------------- raw sockets

def raw_request(port, data, read=True, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        if not read:
            return s
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    finally:
        if read:
            s.close()


def status_of(resp):
    m = re.match(rb"HTTP/1\.[01] (\d{3})", resp)
    return int(m.group(1)) if m else None


def expect_status(base, path, status, text=None, method="GET", data=None):
    st, hdr, body = http(base + path, method=method, data=data)
    label = "%s %s" % (method, path)
    if st != status:
        fail("%s: status %d, want %d (%r)" % (label, st, status, body[:200]))
        return
    if status >= 400:
        if hdr.get("x-go-pprof") != "1" or \
                not hdr.get("content-type", "").startswith("text/plain"):
            fail("%s: error headers %s" % (label, hdr))
        if body.count(b"\n") != 1 or not body.endswith(b"\n"):
            fail("%s: error body not one line: %r" % (label, body))
    if text is not None and text.encode() not in body:
        fail("%s: body lacks %r: %r" % (label, text, body[:300]))
    else:
        note("ok   %s -> %d %s" % (label, st, body[:80].strip()))


# ------------------------------------------------------------- listener

def check_profiles(base, truth, label):
    """heap, allocs, delta_heap, debug=1 + remote symbols, -seconds 2."""
    heap = fetch(base + "/debug/pprof/heap", label=label + " heap")
    if heap:
        check_truth(heap, truth, label + " heap")
    allocs = fetch(base + "/debug/pprof/allocs", label=label + " allocs")
    if allocs:
        check_truth(allocs, truth, label + " allocs",
                    types=["alloc_objects", "alloc_space"])
    alias = fetch(base + "/debug/heap", label=label + " /debug/heap")
    if alias:
        check_truth(alias, truth, label + " /debug/heap",
                    types=["inuse_space"])

    # debug=1 text through pprof's legacy reader, symbols only from our
    # /debug/pprof/symbol (local symbolization off): the pre-inverted rows
    # must give back the truth and every site must be named.
    text = fetch(base + "/debug/pprof/heap?debug=1",
                 ["-symbolize=remote"], label=label + " debug=1")
    if text:
        check_truth(text, truth, label + " debug=1 remote-symbolized")

    # delta_heap: the first scrape holds everything, the next only the
    # allocations since (in-use stays absolute).
    d1 = fetch(base + "/debug/pprof/delta_heap", label=label + " delta_heap")
    if d1:
        check_truth(d1, truth, label + " delta_heap #1")
    time.sleep(1.0)
    d2 = fetch(base + "/debug/pprof/delta_heap",
               label=label + " delta_heap #2")
    if d2:
        sums = d2.by_leaf()
        for site in ["site_hold_small", "site_hold_large", "site_mixed"]:
            got = sums.get(site, [0, 0, 0, 0])
            if got[0] != 0 or got[1] != 0:
                fail("%s delta_heap #2: %s alloc %s, want 0" %
                     (label, site, got[:2]))
        check_truth(d2, truth, label + " delta_heap #2 inuse",
                    types=["inuse_space", "inuse_objects"],
                    sites=["site_hold_small", "site_hold_large"])
        tick = sums.get("site_tick")
        if not tick or tick[1] <= 0:
            fail("%s delta_heap #2: no site_tick allocations" % label)
        else:
            note("ok   %s delta_heap #2: site_tick alloc_space %d" %
                 (label, tick[1]))

    # Go's seconds=N: all four columns differenced over the window.
    t0 = time.time()
    d = fetch(base + "/debug/pprof/heap", ["-seconds", "2"],
              label=label + " -seconds 2")
    took = time.time() - t0
    if d:
        sums = d.by_leaf()
        if d.duration is None or not d.duration.startswith("2."):
            fail("%s -seconds 2: duration %r" % (label, d.duration))
        if took < 2.0:
            fail("%s -seconds 2 returned after %.2f s" % (label, took))
        for site in SITES:
            if any(sums.get(site, [0])):
                fail("%s -seconds 2: %s changed: %s" %
                     (label, site, sums.get(site)))
        tick = sums.get("site_tick")
        # 32 KiB every ~10 ms for 2 s: about 6.5 MB, sleep jitter aside.
        if not tick or not 1.5e6 < tick[1] < 1.5e7:
            fail("%s -seconds 2: site_tick %s" % (label, tick))
        else:
            note("ok   %s -seconds 2: site_tick alloc_space %d in %.2f s" %
                 (label, tick[1], took))


def check_errors(base, port):
    """Every error path; the caller checks the listener afterwards."""
    sec = 'invalid value for "seconds" - must be a positive integer'
    expect_status(base, "/debug/pprof/heap?seconds=0", 400, sec)
    expect_status(base, "/debug/pprof/heap?seconds=x", 400, sec)
    expect_status(base, "/debug/pprof/heap?seconds=3600", 400,
                  "profile duration exceeds server's WriteTimeout")
    expect_status(base, "/debug/pprof/heap?seconds=1&debug=1", 400,
                  "seconds and debug params are incompatible")
    expect_status(base, "/debug/pprof/heap?debug=zz", 400, "debug")
    expect_status(base, "/debug/pprof/heap?gc=%zz", 400, "malformed")
    expect_status(base, "/debug/pprof/delta_heap?seconds=1", 400,
                  "not supported")
    expect_status(base, "/nope", 404)
    expect_status(base, "/debug/pprof/goroutine", 404, "heap profiles only")
    expect_status(base, "/debug/pprof/profile", 404, "heap profiles only")
    expect_status(base, "/debug/pprof/heap", 405, method="PUT", data=b"x")
    expect_status(base, "/debug/pprof/heap", 405, method="DELETE")
    expect_status(base, "/debug/pprof/heap", 405, method="POST", data=b"x")
    st, hdr, _ = http(base + "/debug/pprof/heap", method="DELETE")
    if hdr.get("allow") != "GET, HEAD":
        fail("405 without Allow: %s" % hdr)
    st, hdr, body = http(base + "/debug/pprof/heap", method="HEAD")
    if st != 200 or body:
        fail("HEAD: %d, %d body bytes" % (st, len(body)))
    st, _, body = http(base + "/debug/pprof/cmdline")
    if st != 200 or b"http_workload" not in body:
        fail("cmdline: %d %r" % (st, body[:100]))
    st, _, body = http(base + "/debug/pprof/symbol")
    if body != b"num_symbols: 1\n":
        fail("GET symbol: %r" % body)
    st, _, body = http(base + "/debug/pprof/symbol", method="POST",
                       data=b"0x0+junk+" + b"1+" * 20000)
    if st != 200:
        fail("POST symbol junk: %d" % st)
    # An announced 2 MiB body is refused before it is sent; one that keeps
    # coming in chunks past the cap gets the connection dropped.
    resp = raw_request(port, b"POST /debug/pprof/symbol HTTP/1.1\r\n"
                       b"Host: x\r\nContent-Length: 2097152\r\n\r\n")
    if status_of(resp) != 413:
        fail("POST 2 MiB symbol body: %r, want 413" % resp[:100])
    else:
        note("ok   announced 2 MiB POST -> 413")
    s = raw_request(port, b"POST /debug/pprof/symbol HTTP/1.1\r\nHost: x\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n", read=False)
    try:
        chunk = b"10000\r\n" + b"0" * 0x10000 + b"\r\n"
        for _ in range(40):
            s.sendall(chunk)
        s.sendall(b"0\r\n\r\n")
        s.settimeout(10)
        resp = s.recv(4096)
    except OSError:
        resp = b""
    finally:
        s.close()
    if status_of(resp) == 200:
        fail("2.5 MiB chunked POST accepted: %r" % resp[:100])
    else:
        note("ok   chunked POST past 1 MiB: %r" % resp[:40])

    # Garbage and protocol abuse: answered with 4xx or closed, never hangs.
    for junk in [b"\x00\x01\x02garbage\r\n\r\n",
                 b"GET\r\n\r\n",
                 b"GET /debug/pprof/heap HTTP/9.9\r\n\r\n",
                 b"GET /debug/pprof/heap HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Length: -5\r\n\r\n",
                 b"GET " + b"/a" * 40000 + b" HTTP/1.1\r\n\r\n",
                 b"GET / HTTP/1.1\r\nHost: x\r\n" +
                 b"X-Big: " + b"y" * 200000 + b"\r\n\r\n",
                 os.urandom(4096)]:
        t0 = time.time()
        try:
            resp = raw_request(port, junk, timeout=20)
        except OSError as e:
            resp = b""
            note("junk: %s" % e)
        st = status_of(resp)
        if st is not None and not 400 <= st < 600:
            fail("junk %r...: status %s" % (junk[:30], st))
        else:
            note("ok   junk %r... -> %s in %.2f s" %
                 (junk[:24], st, time.time() - t0))

    # Slow clients: half a request line, and an idle connection, held
    # while others are served; then more connections than the cap.
    slow = raw_request(port, b"GET /debug/pprof/he", read=False)
    idle = socket.create_connection(("127.0.0.1", port))
    t0 = time.time()
    st, _, _ = http(base + "/debug/pprof/heap", timeout=10)
    if st != 200 or time.time() - t0 > 5:
        fail("heap with slow clients connected: %d in %.2f s" %
             (st, time.time() - t0))
    else:
        note("ok   heap served while a slow client holds a connection")
    flood = []
    for _ in range(48):
        try:
            flood.append(socket.create_connection(("127.0.0.1", port),
                                                  timeout=2))
        except OSError:
            break
    note("opened %d idle connections" % len(flood))
    for s in flood + [slow, idle]:
        s.close()
    time.sleep(0.5)


def mode_listener(a):
    work = a.workdir
    truth_path = os.path.join(work, "truth.json")
    port = free_port()
    env = clean_env({"LD_PRELOAD": a.preload, "HEAPPROF_RATE": "4096",
                     "HEAPPROF_HTTP": "127.0.0.1:%d" % port})
    srv = Server([a.workload, truth_path], env, os.path.join(work, "log"))
    try:
        wait_file(truth_path, srv)
        base = "http://127.0.0.1:%d" % port
        wait_http(base + "/debug/pprof/", srv, "listener")
        truth = json.load(open(truth_path))["sites"]
        check_profiles(base, truth, "listener")
        check_errors(base, port)
        # Still serving, host still running and allocating.
        before = fetch(base + "/debug/pprof/allocs", label="after errors")
        time.sleep(0.5)
        after = fetch(base + "/debug/pprof/allocs", label="after errors #2")
        if before and after:
            b = before.by_leaf().get("site_tick", [0, 0])[1]
            c = after.by_leaf().get("site_tick", [0, 0])[1]
            if c <= b:
                fail("host stopped allocating: site_tick %d -> %d" % (b, c))
            else:
                note("ok   host alive: site_tick %d -> %d" % (b, c))
            check_truth(after, truth, "listener after errors",
                        types=["alloc_space"])
        if not srv.alive():
            fail("workload died")
        log = srv.output()
        if "heapprof" in log:
            note("workload output:\n" + log)
    finally:
        srv.stop()


def mode_unix(a):
    work = a.workdir
    truth_path = os.path.join(work, "truth.json")
    sock = os.path.join(work, "hp.sock")
    if os.path.exists(sock):
        os.unlink(sock)
    # A stale socket file from an earlier run is replaced.
    s = socket.socket(socket.AF_UNIX)
    s.bind(sock)
    s.close()
    env = clean_env({"LD_PRELOAD": a.preload, "HEAPPROF_RATE": "4096",
                     "HEAPPROF_HTTP": "unix:" + sock})
    srv = Server([a.workload, truth_path], env, os.path.join(work, "log"))
    try:
        wait_file(truth_path, srv)
        out = None
        for _ in range(100):
            p = subprocess.run(["curl", "-sS", "--unix-socket", sock,
                                "-o", os.path.join(work, "heap.pb.gz"),
                                "-w", "%{http_code}",
                                "http://localhost/debug/pprof/heap"],
                               stdout=subprocess.PIPE, text=True)
            out = p.stdout
            if out == "200":
                break
            time.sleep(0.1)
        if out != "200":
            fail("unix socket: curl got %r; log:\n%s" % (out, srv.output()))
            return
        prof = fetch(os.path.join(work, "heap.pb.gz"), label="unix heap")
        if prof:
            truth = json.load(open(truth_path))["sites"]
            check_truth(prof, truth, "unix heap", types=["inuse_space"])
    finally:
        srv.stop()


def mode_inuse(a):
    work = a.workdir
    truth_path = os.path.join(work, "truth.json")
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    env = clean_env({"LD_PRELOAD": a.preload, "HEAPPROF_RATE": "4096",
                     "HEAPPROF_HTTP": "127.0.0.1:%d" % port})
    srv = Server([a.workload, truth_path], env, os.path.join(work, "log"))
    try:
        wait_file(truth_path, srv)
        time.sleep(0.5)
        if not srv.alive():
            fail("workload died with the port taken")
        lines = [l for l in srv.output().splitlines() if "heapprof" in l]
        if len(lines) != 1 or "is in use" not in lines[0]:
            fail("port taken: want one log line, got %r" % lines)
        else:
            note("ok   port taken: %s" % lines[0])
        # Once the address is free the workload listens there (a daemon's
        # parent exiting frees it the same way).
        blocker.close()
        base = "http://127.0.0.1:%d" % port
        wait_http(base + "/debug/pprof/", srv, "listener after the port was freed")
        lines = [l for l in srv.output().splitlines() if "heapprof" in l]
        if len(lines) != 2 or "let it go" not in lines[1]:
            fail("after the port was freed: want a second line, got %r" % lines)
        else:
            note("ok   port freed: %s" % lines[1])
        prof = fetch(base + "/debug/pprof/heap", label="heap after takeover")
        if prof:
            truth = json.load(open(truth_path))
            check_truth(prof, truth["sites"], "heap after takeover",
                        types=["inuse_space"])
    finally:
        srv.stop()
        blocker.close()


def mode_fork(a):
    """A forked child (no exec) has no listener and no copy of the socket;
    the parent keeps serving."""
    work = a.workdir
    truth_path = os.path.join(work, "truth.json")
    port = free_port()
    env = clean_env({"LD_PRELOAD": a.preload, "HEAPPROF_RATE": "4096",
                     "HEAPPROF_HTTP": "127.0.0.1:%d" % port})
    srv = Server([a.workload, truth_path, "fork"], env,
                 os.path.join(work, "log"))
    child = None
    try:
        wait_file(truth_path, srv)
        info = json.load(open(truth_path))
        child = info["child"]
        base = "http://127.0.0.1:%d" % port
        wait_http(base + "/debug/pprof/", srv, "parent listener")
        for _ in range(5):
            st, _, body = http(base + "/debug/pprof/cmdline")
            if st != 200:
                fail("parent after fork: %d" % st)
        # Which processes hold a socket inode of the listening port?
        inode = None
        for line in open("/proc/net/tcp").read().splitlines()[1:]:
            f = line.split()
            if f[1].endswith(":%04X" % port) and f[3] == "0A":
                inode = f[9]
        holders = []
        for pid in (info["pid"], child):
            for fd in os.listdir("/proc/%d/fd" % pid):
                try:
                    if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == \
                            "socket:[%s]" % inode:
                        holders.append(pid)
                except OSError:
                    pass
        if holders != [info["pid"]]:
            fail("listening socket held by %s, want only the parent %d" %
                 (holders, info["pid"]))
        else:
            note("ok   only the parent holds the listening socket")
        os.kill(child, 0)
        # The parent's own part (?pid=), then the tree: the child's copy of
        # the parent's blocks is really in the child's memory too.
        prof = fetch(base + "/debug/pprof/heap?pid=%d" % info["pid"],
                     label="parent heap")
        if prof:
            check_truth(prof, info["sites"], "parent heap after fork",
                        types=["inuse_space"])
        prof = fetch(base + "/debug/pprof/heap", label="tree heap")
        if prof:
            doubled = {site: {t: 2 * v for t, v in row.items()}
                       for site, row in info["sites"].items()}
            check_truth(prof, doubled, "parent and child heap after fork",
                        types=["inuse_space"])
        lines = [l for l in srv.output().splitlines() if "heapprof" in l]
        if lines:
            fail("fork logged: %r" % lines)
        # The parent exits, as a daemon's does: the child takes the address
        # over within a few seconds and serves its own profile.
        srv.stop()
        wait_http(base + "/debug/pprof/heap", None,
                  "the child's listener after its parent exited", timeout=15)
        os.kill(child, 0)
        prof = fetch(base + "/debug/pprof/heap", label="child heap")
        if prof:
            check_truth(prof, info["sites"], "child heap after takeover",
                        types=["inuse_space"])
            note("ok   the child serves after its parent exited")
    finally:
        if child:
            try:
                os.kill(child, signal.SIGTERM)
            except OSError:
                pass
        srv.stop()


def mode_nomhd(a):
    """libmicrohttpd missing: one clear line, no listener (connections
    refused, not left hanging), profiling and the host carry on. The
    library is hidden with a bind mount in a private mount namespace;
    skipped where unshare is not allowed."""
    work = a.workdir
    lib = None
    multiarch = subprocess.run(["gcc", "-print-multiarch"],
                               stdout=subprocess.PIPE, text=True).stdout.strip()
    for d in ["/usr/lib/" + multiarch, "/lib/" + multiarch,
              "/usr/lib64", "/usr/lib"]:
        if os.path.exists(os.path.join(d, "libmicrohttpd.so.12")):
            lib = os.path.realpath(os.path.join(d, "libmicrohttpd.so.12"))
            break
    probe = subprocess.run(["unshare", "-m", "sh", "-c",
                            "mount --bind /dev/null %s" % lib],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if lib is None or probe.returncode != 0:
        print("cannot hide libmicrohttpd here (unshare -m): skipping")
        sys.exit(77)
    truth_path = os.path.join(work, "truth.json")
    port = free_port()
    # Only the workload is preloaded (not unshare, sh or mount); exec keeps
    # its PID the one we started, and stop.
    srv = Server(["unshare", "-m", "sh", "-c",
                  'mount --bind /dev/null "$0" && exec env "$1" "$2" '
                  'HEAPPROF_RATE=4096 "$3" "$4"',
                  lib, "LD_PRELOAD=" + a.preload,
                  "HEAPPROF_HTTP=127.0.0.1:%d" % port, a.workload,
                  truth_path], clean_env({}), os.path.join(work, "log"))
    try:
        wait_file(truth_path, srv)
        wait_for(lambda: "libmicrohttpd" in srv.output(), 30)
        lines = [l for l in srv.output().splitlines() if "heapprof" in l]
        if len(lines) != 1 or "libmicrohttpd" not in lines[0]:
            fail("no libmicrohttpd: want one line, got %r" % lines)
        else:
            note("ok   " + lines[0])
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            fail("port %d still accepts connections" % port)
        except OSError:
            note("ok   connections refused")
        if not srv.alive():
            fail("workload died")
    finally:
        srv.stop()


def mode_addresses(a):
    """[::1], a non-loopback address (served, one warning line) and a host
    name (refused in one line; the host keeps running)."""
    work = a.workdir
    cases = []
    try:
        s6 = socket.socket(socket.AF_INET6)
        s6.bind(("::1", 0))
        s6.close()
        cases.append(("[::1]:%d", "http://[::1]:%d", None))
    except OSError:
        note("no IPv6 loopback here: [::1] not tested")
    cases.append(("0.0.0.0:%d", "http://127.0.0.1:%d",
                  "not a loopback address"))
    cases.append(("example.invalid:%d", None, "not an IP address"))
    for n, (addr_fmt, url_fmt, want_log) in enumerate(cases):
        port = free_port()
        addr = addr_fmt % port
        truth_path = os.path.join(work, "truth%d.json" % n)
        env = clean_env({"LD_PRELOAD": a.preload, "HEAPPROF_HTTP": addr})
        srv = Server([a.workload, truth_path], env,
                     os.path.join(work, "log%d" % n))
        try:
            wait_file(truth_path, srv)
            if url_fmt is not None:
                base = url_fmt % port
                wait_http(base + "/debug/pprof/", srv, addr)
                st, _, body = http(base + "/debug/pprof/heap")
                if st != 200 or body[:2] != b"\x1f\x8b":
                    fail("%s: heap %d" % (addr, st))
                else:
                    note("ok   %s serves the heap profile" % addr)
            else:
                time.sleep(0.5)
            lines = [l for l in srv.output().splitlines() if "heapprof" in l]
            if want_log is None and lines:
                fail("%s: unexpected log %r" % (addr, lines))
            if want_log is not None and (len(lines) != 1 or
                                         want_log not in lines[0]):
                fail("%s: want one line with %r, got %r" %
                     (addr, want_log, lines))
            elif want_log is not None:
                note("ok   %s: %s" % (addr, lines[0]))
            if not srv.alive():
                fail("%s: workload died" % addr)
        finally:
            srv.stop()


# ------------------------------------------------------------- examples

def mode_example(a):
    work = a.workdir
    port = free_port()
    # Rate 1024: remember_request's 4096 live 1 KiB records give ~2600
    # samples, so +-10 % is > 8 standard deviations of the estimate.
    env = clean_env({"HEAPPROF_RATE": "1024"})
    srv = Server([a.example, str(port)], env, os.path.join(work, "log"))
    base = "http://127.0.0.1:%d" % port
    try:
        wait_http(base + "/", srv, "example")
        # Known truth: each app request keeps one 1 KiB record (a ring of
        # the last 4096) and builds a 4096 + len(uri) byte page it frees.
        n, page_bytes = 0, 0
        for i in range(6000):
            uri = "/?item=%d" % i
            st, _, _ = http(base + uri)
            n += 1
            page_bytes += 4096 + len(uri)
            if st != 200:
                fail("app request %d: %d" % (i, st))
                break
        n += 1  # wait_http's request
        page_bytes += 4096 + 1
        truth = {
            "remember_request": {"alloc_objects": n, "alloc_space": n * 1024,
                                 "inuse_objects": 4096,
                                 "inuse_space": 4096 * 1024},
            "render_page": {"alloc_objects": n, "alloc_space": page_bytes,
                            "inuse_objects": 0, "inuse_space": 0},
        }
        heap = fetch(base + "/debug/pprof/heap", label="example heap")
        if heap:
            check_truth(heap, truth, "example heap",
                        sites=["remember_request", "render_page"])
        funcs = set()
        for path in ["allocs", "delta_heap"]:
            prof = fetch(base + "/debug/pprof/" + path,
                         label="example " + path)
            if prof:
                funcs |= prof.functions()
                if not prof.samples:
                    fail("example %s: no samples" % path)
        if a.expect_function not in funcs:
            fail("example: %s not in profiles (%s)" %
                 (a.expect_function, sorted(funcs)[:40]))
        else:
            note("ok   example profiles name %s" % a.expect_function)

        # seconds=N must not block the server: app requests answered fast
        # while go tool pprof waits.
        result = {}

        def delta():
            result["prof"] = fetch(base + "/debug/pprof/heap",
                                   ["-seconds", "2"],
                                   label="example -seconds 2")
        t = threading.Thread(target=delta)
        t.start()
        # App requests from now until go tool pprof is done: they cover
        # its whole seconds=2 window, however late it starts.
        worst = 0.0
        during = 0
        while t.is_alive():
            t0 = time.time()
            during += 1
            st, _, _ = http(base + "/?item=during", timeout=5)
            worst = max(worst, time.time() - t0)
            if st != 200:
                fail("app during seconds=2: %d" % st)
            time.sleep(0.05)
        t.join()
        # A server that blocked on seconds=2 would hold a request for the
        # whole window (2 s); a loaded machine alone delays one by half a
        # second at times, which says nothing about blocking.
        if worst > 1.5:
            fail("app blocked %.2f s during seconds=2" % worst)
        else:
            note("ok   app answered %d requests, each within %.3f s, during "
                 "seconds=2" % (during, worst))
        prof = result.get("prof")
        if prof is not None:
            if not (prof.duration or "").startswith("2."):
                fail("example -seconds 2: duration %r" % prof.duration)
            if a.expect_function not in prof.functions():
                fail("example -seconds 2: %s missing" % a.expect_function)
        expect_status(base, "/debug/pprof/heap?seconds=-1", 400, "seconds")
        expect_status(base, "/debug/pprof/nothing", 404)
        expect_status(base, "/debug/pprof/heap", 405, method="DELETE")
        st, _, body = http(base + "/debug/pprof/symbol")
        if body != b"num_symbols: 1\n":
            fail("example symbol: %r" % body)
        text = fetch(base + "/debug/pprof/heap?debug=1",
                     ["-symbolize=remote"], label="example debug=1")
        if text and a.expect_function not in text.functions():
            fail("example debug=1 remote: %s missing" % a.expect_function)
        if not srv.alive():
            fail("example died")
    finally:
        srv.stop()


# ------------------------------------------------------------- redis

def mode_redis(a):
    work = a.workdir
    rport, hport = free_port(), free_port()
    env = clean_env({"LD_PRELOAD": a.preload,
                     "HEAPPROF_HTTP": "127.0.0.1:%d" % hport})
    srv = Server([a.redis_server, "--port", str(rport), "--bind", "127.0.0.1",
                  "--save", "", "--appendonly", "no", "--daemonize", "no",
                  "--dir", work], env, os.path.join(work, "log"))
    base = "http://127.0.0.1:%d" % hport
    try:
        wait_http(base + "/debug/pprof/", srv, "redis listener")
        p = subprocess.run([a.redis_benchmark, "-q", "-p", str(rport),
                            "-n", "20000", "-t", "set,get,lpush,lrange"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=600)
        note(p.stdout[-1500:])
        if p.returncode != 0:
            fail("redis-benchmark exited %d" % p.returncode)
        ping = subprocess.run([a.redis_cli, "-p", str(rport), "ping"],
                              stdout=subprocess.PIPE, text=True, timeout=30)
        if ping.stdout.strip() != "PONG":
            fail("redis after benchmark: %r" % ping.stdout)
        p = go_pprof(["-top", "-nodecount=40"],
                     base + "/debug/pprof/heap")
        note(p.stdout[:3000])
        if p.returncode != 0:
            fail("go tool pprof on redis: %s" % p.stderr[-1000:])
        prof = fetch(base + "/debug/pprof/allocs", label="redis allocs")
        if prof:
            funcs = prof.functions()
            want = {"zmalloc", "ztrymalloc_usable", "zmalloc_usable",
                    "createObject", "createStringObject", "sdsnewlen",
                    "_sdsnewlen", "listCreate", "quicklistCreate",
                    "dictAddRaw", "createClient", "lpushCommand",
                    "createQuicklistObject", "processCommand"}
            found = sorted(funcs & want)
            if len(found) < 3:
                fail("redis profile names too few redis functions: %s; "
                     "has %s" % (found, sorted(funcs)[:60]))
            else:
                note("ok   redis functions in the profile: %s" % found)
        ping = subprocess.run([a.redis_cli, "-p", str(rport), "ping"],
                              stdout=subprocess.PIPE, text=True, timeout=30)
        if ping.stdout.strip() != "PONG" or not srv.alive():
            fail("redis stopped serving after the profile")
    finally:
        srv.stop()
        log = open(os.path.join(work, "log")).read()
        if "heapprof" in log:
            note("redis log heapprof lines:\n" + "\n".join(
                l for l in log.splitlines() if "heapprof" in l))


# ------------------------------------------------------------- launcher

def launcher_file_caps(a, work):
    """A program with file capabilities, run by a user who is not root,
    gets the secure-execution mode (LD_PRELOAD ignored): one warning. Needs
    root (to setcap and to become nobody), setcap and setpriv."""
    setcap, setpriv = shutil.which("setcap") or "/usr/sbin/setcap", \
        shutil.which("setpriv")
    if os.getuid() != 0 or not os.access(setcap, os.X_OK) or not setpriv:
        note("skip launcher run -- (file capabilities): needs root, setcap "
             "and setpriv")
        return
    prog = os.path.join(work, "captrue")
    shutil.copy("/bin/true", prog)
    os.chmod(work, 0o755)
    os.chmod(prog, 0o755)
    if subprocess.run([setcap, "cap_net_raw+ep", prog]).returncode != 0:
        note("skip launcher run -- (file capabilities): setcap refused here")
        return
    env = clean_env({"HEAPPROF_LIB": a.preload, "PATH": "/usr/bin:/bin"})
    nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    if subprocess.run(nobody + ["test", "-x", prog, "-a", "-x", a.launcher],
                      env=env).returncode != 0:
        note("skip launcher run -- (file capabilities): nobody cannot reach "
             "the build directory")
        return
    p = subprocess.run(nobody + [a.launcher, "run", "--", prog],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, env=env)
    lines = p.stderr.strip().splitlines()
    if p.returncode != 0 or len(lines) != 1 or \
            "has file capabilities (cap_net_raw=ep)" not in lines[0]:
        fail("launcher run -- a program with file capabilities, as nobody: "
             "rc %d stderr %r" % (p.returncode, p.stderr))
    note("ok   launcher run -- (file capabilities, as nobody): " + lines[0])


def mode_launcher(a):
    work = a.workdir
    p = subprocess.run([a.launcher, "--help"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if p.returncode != 0 or "heapprof run" not in p.stdout:
        fail("--help: %d %r" % (p.returncode, p.stdout[:300]))
    for bad in [[], ["frobnicate"], ["run"], ["run", "--rate", "abc", "--",
                                             "true"],
                ["run", "--http"], ["run", "--interval", "0", "--", "true"],
                ["run", "--bogus", "--", "true"],
                ["run", "--", "/nonexistent/cmd"]]:
        p = subprocess.run([a.launcher] + bad, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True,
                           env=clean_env({"HEAPPROF_LIB": a.preload}))
        if p.returncode == 0 or not p.stderr.strip():
            fail("launcher %s: rc %d stderr %r" % (bad, p.returncode,
                                                   p.stderr))
        else:
            note("ok   launcher %s -> %d: %s" %
                 (bad, p.returncode, p.stderr.strip().splitlines()[0]))
    # A program LD_PRELOAD cannot reach runs anyway, with one warning; a
    # dynamically linked one gets none.
    for cmd, want in ((a.static_cmd, "statically linked"), ("/bin/true", None)):
        p = subprocess.run([a.launcher, "run", "--", cmd], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True,
                           env=clean_env({"HEAPPROF_LIB": a.preload}))
        lines = p.stderr.strip().splitlines()
        ok = p.returncode == 0 and (
            len(lines) == 1 and want in lines[0] if want else not lines)
        if not ok:
            fail("launcher run -- %s: rc %d stderr %r" % (cmd, p.returncode,
                                                           p.stderr))
        else:
            note("ok   launcher run -- %s: %s" % (cmd, lines[0] if lines else
                                                 "no warning"))
    launcher_file_caps(a, work)
    # The real thing: the workload preloaded, served, within the truth.
    truth_path = os.path.join(work, "truth.json")
    port = free_port()
    snap = os.path.join(work, "snaps")
    # A missing --snapshot-dir is refused, not created (as the library
    # does with HEAPPROF_SNAPSHOT_DIR).
    shutil.rmtree(snap, ignore_errors=True)
    p = subprocess.run([a.launcher, "run", "--snapshot-dir", snap, "--",
                        "/bin/true"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True,
                       env=clean_env({"HEAPPROF_LIB": a.preload}))
    if (p.returncode != 2 or "no such directory" not in p.stderr
            or os.path.exists(snap)):
        fail("launcher --snapshot-dir missing: rc %d stderr %r exists %s" %
             (p.returncode, p.stderr, os.path.exists(snap)))
    note("ok   launcher --snapshot-dir missing: " + p.stderr.strip())
    os.makedirs(snap, exist_ok=True)
    env = clean_env({})  # the launcher finds the library itself
    srv = Server([a.launcher, "run", "--http", "127.0.0.1:%d" % port,
                  "--rate", "4096", "--snapshot-dir", snap, "--interval",
                  "3600", "--", a.workload, truth_path], env,
                 os.path.join(work, "log"))
    try:
        wait_file(truth_path, srv)
        base = "http://127.0.0.1:%d" % port
        wait_http(base + "/debug/pprof/", srv, "launched workload")
        truth = json.load(open(truth_path))
        if truth["pid"] != srv.proc.pid:
            fail("launcher did not exec (pid %d vs %d)" %
                 (truth["pid"], srv.proc.pid))
        prof = fetch(base + "/debug/pprof/heap", label="launcher heap")
        if prof:
            if prof.period != 4096:
                fail("launcher --rate: period %s" % prof.period)
            check_truth(prof, truth["sites"], "launcher heap",
                        types=["inuse_space"])
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["listener", "unix", "inuse", "addresses",
                                     "fork", "nomhd", "example", "redis",
                                     "launcher"])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--preload")
    ap.add_argument("--workload")
    ap.add_argument("--example")
    ap.add_argument("--expect-function")
    ap.add_argument("--launcher")
    ap.add_argument("--static-cmd", help="a statically linked program")
    ap.add_argument("--redis-server", default="/usr/bin/redis-server")
    ap.add_argument("--redis-benchmark", default="/usr/bin/redis-benchmark")
    ap.add_argument("--redis-cli", default="/usr/bin/redis-cli")
    a = ap.parse_args()
    if shutil.which("go") is None:
        print("go not found: skipping")
        sys.exit(77)
    if a.mode == "redis" and not os.path.exists(a.redis_server):
        print("redis-server not found: skipping")
        sys.exit(77)
    pprof_tool.run_in_fresh_workdir(globals()["mode_" + a.mode], a)


if __name__ == "__main__":
    main()
