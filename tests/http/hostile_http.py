#!/usr/bin/python3
"""Hostile clients against the HEAPPROF_HTTP listener (issue 13), each case
its own ctest; http_workload runs under LD_PRELOAD.

  params     988 query parameters: 414 with a reason, not a dropped
             connection
  dup_cl     two Content-Length headers: 400
  slowloris  40 clients trickling header bytes (reconnecting when cut):
             a good client is still answered within a few seconds, and
             again and again
  seconds    seconds=N requests: at most 8 wait at once (503 beyond);
             clients that leave are noticed (their slots come back, no
             CLOSE-WAIT sockets pile up)
  token      HEAPPROF_HTTP_TOKEN_FILE: 401 without the bearer token, 200
             with it; a bad token file: no listener, one line
  budget     HEAPPROF_RATE=1: 1 GiB default budget; a full budget is said
             once on stderr, naming HEAPPROF_MAX_MEMORY
  oom        an address-space limit (prlimit) just above the process's
             size, snapshots every second and profile requests: the host
             keeps running, requests get 200 or 503
  symbol     a 1 MiB POST /debug/pprof/symbol (65 000 addresses) is answered
             within seconds (modules opened once, bounded work)
  unix       unix: listener: HEAPPROF_HTTP_SOCKET_MODE sets the socket's
             mode, the socket is removed at exit; a regular file at the
             path is "not a socket" (one line, no retries)

usage: hostile_http.py CASE --preload LIB --workload W --workdir D
"""

import argparse
import os
import socket
import stat
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_http as e  # noqa: E402
import pprof_tool  # noqa: E402
from e2e_http import fail, note  # noqa: E402


def start(a, extra=None, addr=None):
    port = e.free_port()
    env = {"LD_PRELOAD": a.preload, "HEAPPROF_RATE": "4096",
           "HEAPPROF_HTTP": addr or "127.0.0.1:%d" % port}
    env.update(extra or {})
    truth = os.path.join(a.workdir, "truth.json")
    srv = e.Server([a.workload, truth], e.clean_env(env),
                   os.path.join(a.workdir, "log"))
    e.wait_file(truth, srv)
    base = "http://127.0.0.1:%d" % port
    if addr is None:
        e.wait_http(base + "/debug/pprof/", srv, "listener")
    return srv, port, base


def timed_heap(base, limit, label):
    t0 = time.time()
    try:
        st, _, _ = e.http(base + "/debug/pprof/heap", timeout=limit + 5)
    except OSError as ex:
        st = str(ex)
    dt = time.time() - t0
    if st != 200 or dt > limit:
        fail("%s: heap -> %s in %.2f s (limit %d s)" % (label, st, dt, limit))
    else:
        note("ok   %s: heap -> 200 in %.2f s" % (label, dt))


def case_params(a):
    srv, port, base = start(a)
    try:
        for n in (65, 988, 5000):
            q = "&".join(["a=1"] * n)
            resp = e.raw_request(port, b"GET /debug/pprof/heap?" +
                                 q.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                                 timeout=20)
            st = e.status_of(resp)
            if st != 414 or b"too many query parameters" not in resp:
                fail("%d parameters: %r, want 414" % (n, resp[:200]))
            else:
                note("ok   %d parameters -> 414 %r" % (n, resp[-60:]))
        e.expect_status(base, "/debug/pprof/heap?" +
                        "&".join(["debug=0"] * 64), 200)
        timed_heap(base, 10, "after many parameters")
    finally:
        srv.stop()


def case_dup_cl(a):
    srv, port, base = start(a)
    try:
        resp = e.raw_request(port, b"POST /debug/pprof/symbol HTTP/1.1\r\n"
                             b"Host: x\r\nContent-Length: 4\r\n"
                             b"Content-Length: 4\r\n\r\n0x10")
        if e.status_of(resp) != 400 or b"duplicate Content-Length" not in resp:
            fail("duplicate Content-Length: %r, want 400" % resp[:200])
        else:
            note("ok   duplicate Content-Length -> 400")
        resp = e.raw_request(port, b"POST /debug/pprof/symbol HTTP/1.1\r\n"
                             b"Host: x\r\nContent-Length: 4\r\n"
                             b"Connection: close\r\n\r\n0x10")
        if e.status_of(resp) != 200:
            fail("one Content-Length: %r" % resp[:200])
    finally:
        srv.stop()


def trickle(port, stop, connected):
    """One slow client: a header byte every 0.2 s, reconnecting when cut;
    adds itself to connected once its first bytes are sent."""
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /debug/pprof/heap HTTP/1.1\r\nHost: x\r\n")
            connected.add(threading.get_ident())
            while not stop.is_set():
                s.sendall(b"X")
                stop.wait(0.2)
        except OSError:
            stop.wait(0.05)
        finally:
            try:
                s.close()
            except Exception:
                pass


def case_slowloris(a):
    srv, port, base = start(a)
    stop = threading.Event()
    connected = set()
    threads = [threading.Thread(target=trickle, args=(port, stop, connected))
               for _ in range(40)]
    try:
        for t in threads:
            t.start()
        # Every slot taken before the good client asks.
        pprof_tool.wait_until(lambda: len(connected) == len(threads),
                              "the 40 slow clients to connect")
        for i in range(3):
            timed_heap(base, 6, "40 slow clients, try %d" % i)
        if not srv.alive():
            fail("workload died")
    finally:
        stop.set()
        for t in threads:
            t.join()
        srv.stop()


def close_wait(port):
    out = subprocess.run(["ss", "-tan", "state", "close-wait",
                          "( sport = :%d )" % port],
                         stdout=subprocess.PIPE, text=True).stdout
    return max(0, len(out.strip().splitlines()) - 1)


def pending_request(port, secs=3000):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /debug/pprof/heap?seconds=%d HTTP/1.1\r\nHost: x\r\n\r\n"
              % secs)
    return s


def answered(s, wait):
    """The status a client got within wait seconds, or None."""
    s.settimeout(wait)
    try:
        return e.status_of(s.recv(4096))
    except socket.timeout:
        return None
    except OSError:
        return -1


def case_seconds(a):
    srv, port, base = start(a)
    try:
        held = [pending_request(port) for _ in range(8)]
        for s in held:
            if answered(s, 0.3) is not None:
                fail("a waiting seconds=N request was answered early")
        extra = pending_request(port)
        st = answered(extra, 10)
        if st != 503:
            fail("9th waiting seconds=N request: %s, want 503" % st)
        else:
            note("ok   9th waiting seconds=N request -> 503")
        extra.close()
        timed_heap(base, 10, "8 seconds=N waiting")
        # The clients leave: their slots come back (a new request waits
        # instead of getting 503) and their sockets are closed.
        for s in held:
            s.close()
        end = time.time() + 20
        ok = False
        while time.time() < end and not ok:
            s = pending_request(port)
            st = answered(s, 1.0)
            s.close()
            ok = st is None
        if not ok:
            fail("slots of departed seconds=N clients never came back")
        else:
            note("ok   departed seconds=N clients noticed")
        end = time.time() + 20
        while time.time() < end and close_wait(port) > 0:
            time.sleep(0.1)
        if close_wait(port) > 0:
            fail("%d sockets left in CLOSE-WAIT" % close_wait(port))
        timed_heap(base, 10, "after departed clients")
    finally:
        srv.stop()


def curl_unix(sock, path="/debug/pprof/heap", out=os.devnull):
    p = subprocess.run(["curl", "-sS", "--unix-socket", sock, "-o", out,
                        "-w", "%{http_code}", "http://localhost" + path],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    return p.stdout


def case_unix(a):
    sock = os.path.join(a.workdir, "hp.sock")
    srv, _, _ = start(a, {"HEAPPROF_HTTP_SOCKET_MODE": "0600"},
                      addr="unix:" + sock)
    try:
        end = time.time() + 20
        while time.time() < end and curl_unix(sock) != "200":
            time.sleep(0.1)
        if curl_unix(sock) != "200":
            fail("unix socket not served: %s" % srv.output())
        mode = stat.S_IMODE(os.lstat(sock).st_mode)
        if mode != 0o600:
            fail("socket mode %o, want 600" % mode)
        else:
            note("ok   socket mode 0600")
    finally:
        srv.stop()
    if os.path.lexists(sock):
        fail("socket file left behind at exit")
    else:
        note("ok   socket removed at exit")

    # A regular file where the socket should go: one line, never retried.
    with open(sock, "w") as f:
        f.write("not a socket")
    srv, _, _ = start(a, addr="unix:" + sock)
    try:
        end = time.time() + 10
        while time.time() < end and "not a socket" not in srv.output():
            time.sleep(0.1)
        time.sleep(2.5)  # a retrying listener would have logged again
        log = srv.output()
        lines = [ln for ln in log.splitlines() if "heapprof" in ln]
        if "not a socket" not in log or len(lines) != 1:
            fail("regular file at the socket path: %r" % lines)
        else:
            note("ok   regular file -> %s" % lines[0])
        if open(sock).read() != "not a socket":
            fail("the regular file was changed")
    finally:
        srv.stop()


def get_with(url, headers):
    import urllib.error
    import urllib.request
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as ex:
        return ex.code, ex.read()
    except OSError:
        return None, b""


def case_token(a):
    tok = os.path.join(a.workdir, "token")
    with open(tok, "w") as f:
        f.write("s3cret-token-0123456789\n")
    os.chmod(tok, 0o600)
    port = e.free_port()
    srv, _, base = start(a, {"HEAPPROF_HTTP_TOKEN_FILE": tok},
                         addr="127.0.0.1:%d" % port)
    base = "http://127.0.0.1:%d" % port
    url = base + "/debug/pprof/heap"
    try:
        end = time.time() + 20
        while time.time() < end and get_with(url, {})[0] is None:
            time.sleep(0.1)
        for hdrs, want in [({}, 401),
                           ({"Authorization": "Bearer wrong"}, 401),
                           ({"Authorization": "Bearer s3cret-token-012345678"},
                            401),
                           ({"Authorization": "Basic s3cret-token-0123456789"},
                            401),
                           ({"Authorization": "Bearer s3cret-token-0123456789"},
                            200)]:
            st, body = get_with(url, hdrs)
            if st != want:
                fail("token: %s -> %s, want %d (%r)" % (hdrs, st, want,
                                                        body[:100]))
            else:
                note("ok   token: %s -> %d" % (hdrs, st))
    finally:
        srv.stop()
    # An unreadable or too short token: no listener, one line.
    with open(tok, "w") as f:
        f.write("short\n")
    srv, _, _ = start(a, {"HEAPPROF_HTTP_TOKEN_FILE": tok},
                      addr="127.0.0.1:%d" % e.free_port())
    try:
        end = time.time() + 10
        while time.time() < end and "TOKEN_FILE" not in srv.output():
            time.sleep(0.1)
        if "No listener" not in srv.output():
            fail("short token: %r" % srv.output())
        else:
            note("ok   short token: no listener")
    finally:
        srv.stop()


def text_range(pid, name):
    """(start, end) of the first executable mapping of a file named name."""
    for line in open("/proc/%d/maps" % pid):
        f = line.split()
        if len(f) >= 6 and "x" in f[1] and f[5].endswith(name):
            a, b = f[0].split("-")
            return int(a, 16), int(b, 16)
    raise SystemExit("FAIL: no %s mapping" % name)


def case_symbol(a):
    srv, port, base = start(a)
    try:
        lo, hi = text_range(srv.proc.pid, "libc.so.6")
        step = max(16, (hi - lo) // 65000)
        addrs = ["%#x" % x for x in range(lo, hi, step)][:65000]
        body = "+".join(addrs).encode()
        note("POST /debug/pprof/symbol: %d addresses, %d bytes" %
             (len(addrs), len(body)))
        t0 = time.time()
        st, _, out = e.http(base + "/debug/pprof/symbol", method="POST",
                            data=body[:1 << 20], timeout=120)
        dt = time.time() - t0
        lines = out.count(b"\n")
        if st != 200 or dt > 15 or lines < 100 or lines > 16385:
            fail("symbol POST: %s, %.1f s, %d lines" % (st, dt, lines))
        else:
            note("ok   symbol POST: %d lines in %.2f s" % (lines, dt))
        timed_heap(base, 10, "after a big symbol POST")
    finally:
        srv.stop()


def comments(url):
    end = time.time() + 60
    while True:
        p = e.go_pprof(["-comments"], url)
        if p.returncode == 0 or time.time() > end:
            return p.stdout if p.returncode == 0 else p.stderr
        time.sleep(0.5)


def case_budget(a):
    """Rate 1: the default budget is 1 GiB, and a budget that fills up says
    so once on stderr, naming HEAPPROF_MAX_MEMORY."""
    srv, port, base = start(a, {"HEAPPROF_RATE": "1"})
    try:
        c = comments(base + "/debug/pprof/heap")
        if "(budget 1073741824" not in c:
            fail("rate 1, default budget: %r" % c)
        else:
            note("ok   rate 1: default budget 1 GiB")
    finally:
        srv.stop()
    srv, port, base = start(a, {"HEAPPROF_RATE": "1",
                                "HEAPPROF_MAX_MEMORY": "1m"})
    try:
        # The workload keeps allocating: wait for the table to fill.
        end = time.time() + 60
        while True:
            c = comments(base + "/debug/pprof/heap")
            m = [ln for ln in c.splitlines() if "dropped=" in ln]
            if (m and "dropped=0 " not in m[0]) or time.time() > end:
                break
            time.sleep(0.2)
        log = [ln for ln in srv.output().splitlines() if "heapprof" in ln]
        full = [ln for ln in log if "HEAPPROF_MAX_MEMORY" in ln]
        if not m or "dropped=0 " in m[0] or len(full) != 1:
            fail("full budget: comments %r, stderr %r" % (m, log))
        else:
            note("ok   full budget: %s / %s" % (m[0].strip(), full[0]))
    finally:
        srv.stop()


def vm_size(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def case_oom(a):
    """An address-space limit just above what the process maps, set once
    it runs, with snapshots every second and profile requests: the host
    is never killed by heapprof (abort, fault); requests get 200 or 503."""
    snaps = os.path.join(a.workdir, "snaps")
    os.makedirs(snaps)
    for extra_mib in (1, 4, 16):
        srv, port, base = start(a, {"HEAPPROF_SNAPSHOT_DIR": snaps,
                                    "HEAPPROF_SNAPSHOT_INTERVAL": "1"})
        try:
            pid = srv.proc.pid
            limit = vm_size(pid) + extra_mib * (1 << 20)
            subprocess.run(["prlimit", "--pid", str(pid),
                            "--as=%d:" % limit], check=True)
            statuses = {}
            end = time.time() + 4
            while time.time() < end and srv.alive():
                for path in ("/debug/pprof/heap", "/debug/pprof/allocs",
                             "/debug/pprof/heap?debug=1"):
                    try:
                        st, _, _ = e.http(base + path, timeout=10)
                    except OSError as ex:
                        st = type(ex).__name__
                    statuses[st] = statuses.get(st, 0) + 1
            rc = srv.proc.poll()
            out = srv.output()
            if rc is not None and (rc < 0 or rc == 127 or "ABORT" in out):
                fail("limit +%d MiB: the host died (rc %s): %s" % (
                    extra_mib, rc, out[-2000:]))
            elif rc is not None:
                # The workload's own malloc failed and it chose to exit.
                note("ok   limit +%d MiB: the workload exited on its own "
                     "ENOMEM (rc %d), not killed" % (extra_mib, rc))
            elif set(statuses) - {200, 503}:
                fail("limit +%d MiB: statuses %s" % (extra_mib, statuses))
            else:
                note("ok   limit +%d MiB: alive, %s" % (extra_mib, statuses))
        finally:
            srv.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=["params", "dup_cl", "slowloris",
                                     "seconds", "unix", "token", "symbol", "budget", "oom"])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--preload", required=True)
    ap.add_argument("--workload", required=True)
    a = ap.parse_args()
    pprof_tool.run_in_fresh_workdir(globals()["case_" + a.case], a)


if __name__ == "__main__":
    main()
