#!/usr/bin/python3
"""End-to-end test of ngx_http_heapprof_module with Debian's real nginx.

The project is installed into a temporary prefix and nginx (master + two
workers, loopback port, its own -p prefix, no LD_PRELOAD anywhere) loads
the installed module with load_module. Checked: nginx -t passes and fails
with a clear message on a bad value; under load, go tool pprof reads
/debug/pprof/heap and /debug/pprof/allocs and finds nginx's own allocation
sites with samples from both workers (pid labels); ?pid=N selects one;
seconds=N; bad queries get 4xx; a HUP reload keeps it working; the master
stops on SIGQUIT. Exit 77 (skip) when nginx or the module is absent.

usage: run_nginx.py --build-dir B --work-dir W [--module-target-file F]
"""
import argparse
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pprof_tool import fatal, free_port  # noqa: E402

NGINX = "/usr/sbin/nginx"
SKIP = 77


def log(msg):
    print("run_nginx: " + msg, flush=True)


def clean_env():
    env = {k: v for k, v in os.environ.items()
           if k != "LD_PRELOAD" and not k.startswith("HEAPPROF_")}
    return env


def get(port, path, method="GET", body=None, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body)
        r = c.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        c.close()


CONF = """\
load_module {module};
user {user};
worker_processes 2;
daemon on;
master_process on;
pid {work}/nginx.pid;
error_log {work}/error.log info;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {work}/client_body_temp;
    proxy_temp_path {work}/proxy_temp;
    fastcgi_temp_path {work}/fastcgi_temp;
    uwsgi_temp_path {work}/uwsgi_temp;
    scgi_temp_path {work}/scgi_temp;
    {extra}
    server {{
        # reuseport: each worker has its own socket, so the kernel spreads
        # the test's connections over both workers.
        listen 127.0.0.1:{port} reuseport;
        location / {{ return 200 "hello from nginx\\n"; }}
        location /debug/pprof/ {{ heapprof; }}
    }}
}}
"""


class Nginx:
    def __init__(self, work, module, port):
        self.work = work
        self.module = module
        self.port = port
        self.conf = os.path.join(work, "nginx.conf")
        self.master = None

    def write_conf(self, extra="heapprof_rate 16k; "
                   "heapprof_snapshot_dir snapshots; "
                   "heapprof_snapshot_interval 1s; heapprof_snapshot_keep 2;"):
        user = "root" if os.geteuid() == 0 else "nobody"
        text = CONF.format(module=self.module, work=self.work, port=self.port,
                           extra=extra, user=user)
        if os.geteuid() != 0:
            text = text.replace("user nobody;\n", "")
        with open(self.conf, "w") as f:
            f.write(text)

    def cmd(self, *args):
        return [NGINX, "-p", self.work + "/", "-c", self.conf, *args]

    def test(self):
        return subprocess.run(self.cmd("-t"), env=clean_env(),
                              capture_output=True, text=True)

    def start(self):
        r = subprocess.run(self.cmd(), env=clean_env(), capture_output=True,
                           text=True)
        if r.returncode != 0:
            fatal("nginx did not start: " + r.stderr)
        for _ in range(100):
            try:
                with open(os.path.join(self.work, "nginx.pid")) as f:
                    self.master = int(f.read().strip())
                get(self.port, "/", timeout=2)
                return
            except (OSError, ValueError):
                time.sleep(0.1)
        fatal("nginx did not answer on port %d" % self.port)

    def workers(self):
        out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid",
                              str(self.master)], capture_output=True,
                             text=True).stdout
        return sorted(int(l.split()[0]) for l in out.splitlines()
                      if "worker process" in l and "shutting down" not in l)

    def all_children(self):
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.master)],
                             capture_output=True, text=True).stdout
        return sorted(int(x) for x in out.split())

    def stop(self):
        if self.master is None:
            return
        try:
            os.kill(self.master, signal.SIGQUIT)
        except ProcessLookupError:
            self.master = None
            return
        for _ in range(100):
            try:
                os.kill(self.master, 0)
            except ProcessLookupError:
                self.master = None
                return
            time.sleep(0.1)
        os.kill(self.master, signal.SIGKILL)
        self.master = None
        fatal("nginx master did not exit on SIGQUIT")


def load(port, seconds):
    """wrk when installed; else requests from a few threads, new
    connections and keep-alive ones, some with large headers (bigger
    request buffers and pools)."""
    if shutil.which("wrk"):
        r = subprocess.run(["wrk", "-t2", "-c16", "-d%ds" % max(1, seconds),
                            "-H", "X-Filler: " + "v" * 2000,
                            "http://127.0.0.1:%d/page" % port],
                           capture_output=True, text=True)
        if r.returncode != 0 or "Requests/sec" not in r.stdout:
            fatal("wrk: " + r.stdout + r.stderr)
        return
    stop = time.time() + seconds
    errors = []

    def worker(n):
        big = {"X-Filler-%d" % i: "v" * 300 for i in range(8)}
        while time.time() < stop:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                for i in range(5):
                    c.request("GET", "/page/%d/%d" % (n, i),
                              headers=big if i % 2 else {})
                    c.getresponse().read()
                c.close()
            except OSError as e:
                errors.append(str(e))
                return

    ts = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        fatal("load: " + errors[0])


def pprof(args, path, env):
    r = subprocess.run(["go", "tool", "pprof", *args, path], env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        fatal("go tool pprof %s %s: %s" % (" ".join(args), path, r.stderr))
    return r.stdout


def top_functions(out):
    names = set()
    for line in out.splitlines():
        if "%" in line:
            names.add(line.split()[-1])
    return names


def tag_values(out, key):
    """Values of a label in `go tool pprof -tags` output."""
    vals, inside = set(), False
    for line in out.splitlines():
        s = line.strip()
        if s.startswith(key + ":"):
            inside = True
            continue
        if inside:
            if not s:
                break
            if "):" in s:
                vals.add(s.split("):", 1)[1].strip())
    return vals


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--work-dir", required=True)
    ap.add_argument("--module-built", default="")
    a = ap.parse_args()

    if not os.access(NGINX, os.X_OK):
        log("SKIP: %s not installed (apt-get install nginx)" % NGINX)
        return SKIP
    if not a.module_built or not os.path.exists(a.module_built):
        log("SKIP: the module was not built (apt-get install nginx-dev)")
        return SKIP
    if shutil.which("go") is None:
        fatal("go not found (apt-get install golang-go)")

    work = os.path.abspath(a.work_dir)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    prefix = os.path.join(work, "prefix")
    os.makedirs(os.path.join(work, "snapshots"))
    env = clean_env()
    env["PPROF_TMPDIR"] = os.path.join(work, "pprof")

    # The installed module (RUNPATH $ORIGIN/../.. finds libheapprof.so).
    r = subprocess.run(["cmake", "--install", a.build_dir, "--prefix", prefix],
                       capture_output=True, text=True)
    if r.returncode != 0:
        fatal("cmake --install: " + r.stdout + r.stderr)
    module = None
    for root, _, files in os.walk(prefix):
        if "ngx_http_heapprof_module.so" in files and root.endswith(
                os.path.join("nginx", "modules")):
            module = os.path.join(root, "ngx_http_heapprof_module.so")
    if module is None:
        fatal("ngx_http_heapprof_module.so not installed under "
             "lib/nginx/modules")
    log("module " + module)

    ngx = Nginx(work, module, free_port())

    # A bad value fails nginx -t with a message naming it.
    ngx.write_conf("heapprof_rate lots;")
    t = ngx.test()
    if t.returncode == 0:
        fatal("nginx -t accepted heapprof_rate lots")
    if 'invalid value "lots" in "heapprof_rate" directive' not in t.stderr:
        fatal("unclear nginx -t message: " + t.stderr)
    log("bad value refused: " + t.stderr.splitlines()[0])
    ngx.write_conf("heapprof_snapshot_interval 0;")
    t = ngx.test()
    if t.returncode == 0 or "heapprof_snapshot_interval" not in t.stderr:
        fatal("nginx -t accepted heapprof_snapshot_interval 0: " + t.stderr)

    ngx.write_conf()
    t = ngx.test()
    if t.returncode != 0 or "test is successful" not in t.stderr:
        fatal("nginx -t: " + t.stderr)
    log("nginx -t ok")

    try:
        ngx.start()
        # One worker answering does not mean the other has set its process
        # title yet (right after fork it still reads "master process").
        for _ in range(50):
            workers = ngx.workers()
            if len(workers) >= 2:
                break
            time.sleep(0.1)
        log("master %d, workers %s" % (ngx.master, workers))
        if len(workers) != 2:
            fatal("expected 2 workers, got %s" % workers)
        for w in workers:
            with open("/proc/%d/environ" % w, "rb") as f:
                if b"LD_PRELOAD=" in f.read():
                    fatal("worker %d has LD_PRELOAD" % w)
            with open("/proc/%d/maps" % w) as f:
                if "libheapprof" not in f.read():
                    fatal("worker %d has not loaded libheapprof" % w)

        load(ngx.port, 3)

        # Requests still being read hold their pools: in-use memory.
        slow = []
        for i in range(120):
            sk = socket.create_connection(("127.0.0.1", ngx.port), timeout=5)
            sk.sendall(b"GET /slow/%d HTTP/1.1\r\nHost: test\r\nX-Slow: " % i)
            slow.append(sk)
        time.sleep(0.5)

        # Profile requests of its own (heapprof's work) must not show in
        # nginx's allocs: the module lists the exchange directory without
        # opendir's malloc'd buffer.
        for _ in range(8):
            get(ngx.port, "/debug/pprof/heap")
        files = {}
        for name in ("heap", "allocs"):
            st, hdr, body = get(ngx.port, "/debug/pprof/" + name)
            if st != 200:
                fatal("/debug/pprof/%s: %d %s" % (name, st, body[:200]))
            if hdr.get("x-heapprof-workers") != "2/2":
                fatal("/debug/pprof/%s covers %s workers" %
                     (name, hdr.get("x-heapprof-workers")))
            path = os.path.join(work, name + ".pb.gz")
            with open(path, "wb") as f:
                f.write(body)
            files[name] = path

        # ngx_palloc itself may be a tail call (no frame of its own) in
        # Debian's build, so any of the pool entry points will do.
        want = {"ngx_create_pool", "ngx_alloc"}
        pool_fns = {"ngx_palloc", "ngx_pcalloc", "ngx_pnalloc"}
        for name, index in (("allocs", "alloc_space"), ("heap", "alloc_space"),
                            ("heap", "inuse_space")):
            out = pprof(["-top", "-nodefraction=0", "-nodecount=100000",
                         "-sample_index=" + index], files[name], env)
            funcs = top_functions(out)
            if index == "alloc_space":
                missing = want - funcs
                if not pool_fns & funcs:
                    missing.add("|".join(sorted(pool_fns)))
                if missing:
                    print(out)
                    fatal("%s %s: missing %s" % (name, index, sorted(missing)))
            if not any(f.startswith("ngx_http_") for f in funcs):
                print(out)
                fatal("%s %s: no ngx_http_* frame" % (name, index))
            bad = [f for f in funcs if f.startswith(("hp_", "heapprof_")) or
                   f in ("opendir", "__opendir", "__alloc_dir")]
            if bad:
                fatal("heapprof's own frames in the profile: %s" % bad)
            log("%s %s: %d functions, e.g. %s" % (
                name, index, len(funcs),
                ", ".join(sorted(f for f in funcs if f.startswith("ngx_"))[:6])))

        for sk in slow:
            sk.close()

        # heapprof_snapshot_dir: every worker writes its own snapshots.
        snaps = os.listdir(os.path.join(work, "snapshots"))
        for w in workers:
            mine = sorted(f for f in snaps
                          if f.startswith("heap-%d-" % w) and
                          f.endswith(".pb.gz"))
            if not mine:
                fatal("no snapshot of worker %d in %s" % (w, snaps))
            pprof(["-top"], os.path.join(work, "snapshots", mine[-1]), env)
        log("snapshots: %d files" % len(snaps))

        raw = pprof(["-raw"], files["heap"], env)
        if "Duration:" in raw:
            fatal("the merged heap profile has a Duration (Go's have none)")

        tags = pprof(["-tags", "-sample_index=alloc_space"], files["allocs"],
                     env)
        pids = tag_values(tags, "pid")
        if pids != {str(w) for w in workers}:
            print(tags)
            fatal("pid labels %s, workers %s" % (pids, workers))
        log("samples from both workers: pid %s" % sorted(pids))

        # ?pid=N: one worker, whichever worker answers.
        for w in workers:
            st, hdr, body = get(ngx.port, "/debug/pprof/allocs?pid=%d" % w)
            if st != 200:
                fatal("?pid=%d: %d %s" % (w, st, body[:200]))
            path = os.path.join(work, "allocs-%d.pb.gz" % w)
            with open(path, "wb") as f:
                f.write(body)
            got = tag_values(pprof(["-tags"], path, env), "pid")
            if got != {str(w)}:
                fatal("?pid=%d gave pids %s" % (w, got))
        log("?pid=N selects one worker")

        # seconds=N: a delta over both workers, without blocking a worker.
        t0 = time.time()
        th = threading.Thread(target=load, args=(ngx.port, 1.0))
        th.start()
        st, hdr, body = get(ngx.port, "/debug/pprof/allocs?seconds=2")
        th.join()
        if st != 200 or time.time() - t0 < 1.9:
            fatal("seconds=2: %d after %.1fs" % (st, time.time() - t0))
        if "allocs-delta" not in hdr.get("content-disposition", ""):
            fatal("seconds=2: disposition %s" % hdr.get("content-disposition"))
        path = os.path.join(work, "delta.pb.gz")
        with open(path, "wb") as f:
            f.write(body)
        pprof(["-top"], path, env)
        log("seconds=2 ok")

        # Bad queries get 4xx with a one-line reason.
        for q, want_st in (("heap?pid=abc", 400), ("heap?pid=1", 404),
                           ("heap?debug=x", 400), ("heap?seconds=x", 400),
                           ("allocs?gc=x", 400), ("nosuchprofile", 404),
                           ("cmdline?pid=1", 400)):
            st, hdr, body = get(ngx.port, "/debug/pprof/" + q)
            if st != want_st:
                fatal("/debug/pprof/%s: %d (want %d) %s" % (q, st, want_st,
                                                          body[:200]))
            if not body.strip() or body.count(b"\n") > 1:
                fatal("/debug/pprof/%s: body %r" % (q, body[:200]))
        st, hdr, body = get(ngx.port, "/debug/pprof/heap", method="PUT")
        if st != 405:
            fatal("PUT: %d" % st)
        st, hdr, body = get(ngx.port, "/debug/pprof/")
        if st != 200 or b"heap" not in body:
            fatal("index: %d" % st)
        st, hdr, body = get(ngx.port, "/debug/pprof/heap?debug=1")
        if st != 200 or not body.startswith(b"heap profile:"):
            fatal("debug=1: %d %r" % (st, body[:100]))
        log("bad queries answered 4xx")

        # HUP: new workers, profiling goes on in them.
        os.kill(ngx.master, signal.SIGHUP)
        deadline = time.time() + 20
        while time.time() < deadline:
            now = ngx.all_children()
            if len(now) == 2 and not set(now) & set(workers):
                break
            time.sleep(0.2)
        else:
            fatal("after HUP: workers %s (old %s)" % (ngx.all_children(),
                                                     workers))
        new = sorted(now)  # titles may still be unset: use the pids
        load(ngx.port, 2)
        st, hdr, body = get(ngx.port, "/debug/pprof/allocs")
        if st != 200 or hdr.get("x-heapprof-workers") != "2/2":
            fatal("after HUP: %d %s" % (st, hdr.get("x-heapprof-workers")))
        path = os.path.join(work, "allocs-hup.pb.gz")
        with open(path, "wb") as f:
            f.write(body)
        out = pprof(["-top", "-nodefraction=0", "-nodecount=100000"], path,
                    env)
        if "ngx_create_pool" not in top_functions(out):
            fatal("after HUP: ngx_create_pool missing")
        pids = tag_values(pprof(["-tags"], path, env), "pid")
        if pids != {str(w) for w in new}:
            fatal("after HUP: pids %s, workers %s" % (pids, new))
        log("HUP reload: workers %s profiled" % new)

        # heapprof_enabled off, by reload: the endpoint says so.
        ngx.write_conf("heapprof_enabled off;")
        os.kill(ngx.master, signal.SIGHUP)
        deadline = time.time() + 20
        while time.time() < deadline:
            st, hdr, body = get(ngx.port, "/debug/pprof/heap")
            if st == 503:
                break
            time.sleep(0.2)
        else:
            fatal("heapprof_enabled off: still %d" % st)
        log("heapprof_enabled off: 503")
    finally:
        master = ngx.master
        ngx.stop()
        with open(os.path.join(work, "error.log")) as f:
            errlog = f.read()
        bad = [l for l in errlog.splitlines()
               if "[alert]" in l or "[emerg]" in l or "[crit]" in l
               or "signal 11" in l or "heapprof:" in l and "[error]" in l]
        if bad:
            print(errlog[-4000:], file=sys.stderr)
            fatal("error log: " + bad[0])
        log("stopped master %s with SIGQUIT" % master)
    log("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
