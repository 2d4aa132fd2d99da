#!/usr/bin/python3
"""`heapprof attach PID` / `heapprof detach PID` end to end.

  --case live     attach_workload started bare, attached under load (HTTP
                  and snapshots), its sites read with go tool pprof, then
                  detached, attached again (it says how many blocks sampled
                  before it forgot) and detached; it runs to its end with the output and exit
                  status of an untouched run, and heapprof wrote nothing on
                  its stderr.
  --case refused  refusals leave the target untouched: a static binary, a
                  second attach, detach of a process never attached, a
                  process started under LD_PRELOAD, and (as root) an
                  attach by an unprivileged user; a shell waiting for the
                  workload is attached with a note naming the workload.
  --case redis    Debian's redis-server (jemalloc underneath): attached,
                  its sites in the profile, detached, still serving.
Exit 77 when something the case needs is missing.
"""
import argparse
import re
import os
import shutil
import signal
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pprof_tool import fatal as fail, free_port, go_pprof, note, wait_until  # noqa: E402

SKIP = 77


def skip(msg):
    note("check_attach_cmd: SKIP: " + msg)
    sys.exit(SKIP)


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def clean_env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HEAPPROF_") and k != "LD_PRELOAD"}
    return env


def launcher(args, cmd, user=None):
    argv = [args.launcher] + cmd
    if user is not None:
        argv = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user,
                "--clear-groups"] + argv
    env = clean_env()
    env["HEAPPROF_LIB"] = args.lib
    r = subprocess.run(argv, env=env, capture_output=True, text=True,
                       timeout=300)
    print("$ heapprof %s -> %d\n%s%s" % (" ".join(cmd), r.returncode,
                                         r.stdout, r.stderr), flush=True)
    return r


def maps_has_heapprof(pid):
    with open("/proc/%d/maps" % pid) as f:
        return "libheapprof" in f.read()


def thread_names(pid):
    names = []
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, t)) as f:
                names.append(f.read().strip())
        except OSError:
            pass
    return names


def pprof_top(args, source, index):
    env = dict(clean_env(), PPROF_TMPDIR=os.path.join(args.workdir, "pprof"))
    r = go_pprof(["-top", "-nodefraction=0", "-sample_index=" + index],
                 source, env)
    if r.returncode != 0:
        fail("go tool pprof %s: %s" % (source, r.stderr))
    return r.stdout


class Workload:
    """attach_workload started bare; stop() lets it finish."""

    def __init__(self, args, exe, name, preload=None):
        self.ready = os.path.join(args.workdir, name + ".ready")
        self.stop_file = os.path.join(args.workdir, name + ".stop")
        self.err_path = os.path.join(args.workdir, name + ".stderr")
        for p in (self.ready, self.stop_file):
            if os.path.exists(p):
                os.unlink(p)
        self.err = open(self.err_path, "w")
        env = clean_env()
        if preload:
            env["LD_PRELOAD"] = preload
        self.p = subprocess.Popen([exe, self.ready, self.stop_file],
                                  env=env, stdout=subprocess.PIPE,
                                  stderr=self.err, text=True)
        wait_until(lambda: os.path.exists(self.ready) or
                 self.p.poll() is not None, "the workload to start")
        if self.p.poll() is not None:
            fail("the workload exited at start: %d" % self.p.returncode)

    def finish(self):
        open(self.stop_file, "w").close()
        out, _ = self.p.communicate(timeout=120)
        self.err.close()
        with open(self.err_path) as f:
            err = f.read()
        return out, self.p.returncode, err


def reference(args, exe):
    w = Workload(args, exe, "reference")
    return w.finish()


def expect_same_end(args, exe, w, label):
    ref_out, ref_rc, _ = reference(args, exe)
    out, rc, err = w.finish()
    if (out, rc) != (ref_out, ref_rc):
        fail("%s: the target ended differently: exit %d, output %r; "
             "untouched: exit %d, output %r" % (label, rc, out, ref_rc,
                                               ref_out))
    lines = [l for l in err.splitlines() if "heapprof" in l]
    if len(lines) > 1:
        fail("%s: heapprof wrote %d lines on the target's stderr: %r"
             % (label, len(lines), lines))
    print("%s: the target ended as an untouched run does (exit %d)"
          % (label, rc), flush=True)


def case_live(args):
    if shutil.which("go") is None:
        skip("go not found (golang-go)")
    w = Workload(args, args.workload, "live")
    port = free_port()
    snaps = os.path.join(args.workdir, "snaps")
    shutil.rmtree(snaps, ignore_errors=True)
    os.makedirs(snaps)  # heapprof never creates the snapshot directory
    r = launcher(args, ["attach", "--http", "127.0.0.1:%d" % port,
                        "--rate", "4k", "--snapshot-dir", snaps,
                        "--interval", "1", str(w.p.pid)])
    if r.returncode != 0 or "attached" not in r.stdout:
        fail("attach failed")
    wait_until(lambda: os.path.isdir(snaps) and any(
        n.endswith(".pb.gz") for n in os.listdir(snaps)), "a snapshot")
    url = "http://127.0.0.1:%d/debug/pprof/heap" % port
    for index, source in (("inuse_space", url), ("alloc_space", url)):
        top = pprof_top(args, source, index)
        print(top, flush=True)
        for site in ("attach_site_malloc", "attach_site_calloc",
                     "attach_site_realloc"):
            if site not in top:
                fail("%s missing from %s %s" % (site, index, source))
    r = launcher(args, ["detach", str(w.p.pid)])
    if r.returncode != 0 or "detached" not in r.stdout:
        fail("detach failed")
    left = [n for n in thread_names(w.p.pid) if n.startswith("heapprof")]
    if left:
        fail("heapprof threads still running after detach: %r" % left)
    if port_open(port):
        fail("the listener still accepts connections after detach")
    r = launcher(args, ["detach", str(w.p.pid)])
    if r.returncode == 0 or "not attached" not in r.stderr:
        fail("a second detach did not say 'not attached'")
    # Attached again: the blocks sampled before the detach (the workload's
    # rings were sampled at 4 KiB) are forgotten, and the launcher says so.
    r = launcher(args, ["attach", "--rate", "4k", str(w.p.pid)])
    if (r.returncode != 0 or "attached" not in r.stdout or
            "sampled before the last detach forgotten" not in r.stdout):
        fail("attaching again did not say how many blocks it forgot")
    r = launcher(args, ["detach", str(w.p.pid)])
    if r.returncode != 0 or "detached" not in r.stdout:
        fail("detach after attaching again failed")
    expect_same_end(args, args.workload, w, "live")


def refused(args, r, what, pid=None):
    lines = r.stderr.strip().splitlines()
    if r.returncode == 0 or len(lines) != 1 or what not in lines[0]:
        fail("expected one line with %r and a failure, got %d: %r"
             % (what, r.returncode, r.stderr))
    if pid is not None and maps_has_heapprof(pid):
        fail("libheapprof was loaded into the refused target")


def case_refused(args):
    # A static binary: nothing to load into.
    w = Workload(args, args.static_workload, "static")
    refused(args, launcher(args, ["attach", str(w.p.pid)]),
            "statically linked", w.p.pid)
    expect_same_end(args, args.static_workload, w, "static")

    w = Workload(args, args.workload, "refused")
    # Never attached: detach has nothing to undo.
    refused(args, launcher(args, ["detach", str(w.p.pid)]), "not attached",
            w.p.pid)
    # Another user may not trace it (as root: the launcher run as nobody).
    if os.getuid() == 0 and shutil.which("setpriv"):
        refused(args, launcher(args, ["attach", str(w.p.pid)], user=65534),
                "ptrace rights", w.p.pid)
    else:
        print("refused: not root, the other-user case is not run")
    # A bad setting: refused inside the target, nothing patched.
    r = launcher(args, ["attach", "--rate", "1", "--stack-depth", "999",
                        str(w.p.pid)])
    refused(args, r, "HEAPPROF_STACK_DEPTH")
    # Attached once; a second attach is refused and changes nothing.
    r = launcher(args, ["attach", "--rate", "1m", str(w.p.pid)])
    if r.returncode != 0:
        fail("attach failed")
    refused(args, launcher(args, ["attach", str(w.p.pid)]),
            "already attached")
    if launcher(args, ["detach", str(w.p.pid)]).returncode != 0:
        fail("detach failed")
    expect_same_end(args, args.workload, w, "refused")

    shell_parent(args)

    # Started under LD_PRELOAD: heapprof already is its malloc.
    w = Workload(args, args.workload, "preloaded", preload=args.lib)
    refused(args, launcher(args, ["attach", "--rate", "1m", str(w.p.pid)]),
            "already this process's malloc")
    refused(args, launcher(args, ["detach", str(w.p.pid)]), "not attached")
    out, rc, _ = w.finish()
    ref_out, ref_rc, _ = reference(args, args.workload)
    if (out, rc) != (ref_out, ref_rc):
        fail("preloaded: the target ended differently: exit %d, output %r"
             % (rc, out))


def shell_parent(args):
    """Attaching to a shell that waits for the program it started works,
    with a note naming that program (the usual slip: `cmd &` in a subshell
    gives the subshell's PID)."""
    if not os.path.exists("/proc/self/task/%d/children" % os.getpid()):
        print("shell parent: no /proc/PID/task/TID/children here, not run")
        return
    ready = os.path.join(args.workdir, "wrapped.ready")
    stop = os.path.join(args.workdir, "wrapped.stop")
    sh = subprocess.Popen(["sh", "-c", '"$0" "$1" "$2" & wait', args.workload,
                           ready, stop], env=clean_env(),
                          stdout=subprocess.DEVNULL)
    try:
        wait_until(lambda: os.path.exists(ready), "the wrapped workload")
        r = launcher(args, ["attach", "--rate", "1m", str(sh.pid)])
        m = re.search(r"note: %d is a shell \(sh\); the program it started "
                      r"may be: (\d+) \(hp_attach_work" % sh.pid, r.stderr)
        if r.returncode != 0 or m is None:
            fail("attach to a shell parent: no note naming its child")
        if launcher(args, ["detach", str(sh.pid)]).returncode != 0:
            fail("detach of the shell failed")
    finally:
        open(stop, "w").close()
        sh.wait(timeout=60)


def redis_cli(port, *cmd):
    return subprocess.run(["redis-cli", "-p", str(port)] + list(cmd),
                          capture_output=True, text=True, timeout=60)


def case_redis(args):
    for tool in ("redis-server", "redis-cli", "go"):
        if shutil.which(tool) is None:
            skip(tool + " not found")
    port, http = free_port(), free_port()
    log = open(os.path.join(args.workdir, "redis.log"), "w")
    p = subprocess.Popen(["redis-server", "--port", str(port), "--save", "",
                          "--appendonly", "no", "--bind", "127.0.0.1"],
                         env=clean_env(), stdout=log, stderr=log)
    try:
        wait_until(lambda: redis_cli(port, "ping").stdout.strip() == "PONG",
                 "redis-server")
        r = launcher(args, ["attach", "--http", "127.0.0.1:%d" % http,
                            "--rate", "4k", str(p.pid)])
        if r.returncode != 0 or "attached" not in r.stdout:
            fail("attach to redis-server failed")
        for i in range(200):
            redis_cli(port, "rpush", "list%d" % (i % 10), "x" * 500, "y" * 900)
        top = pprof_top(args, "http://127.0.0.1:%d/debug/pprof/heap" % http,
                        "alloc_space")
        print(top, flush=True)
        if "zmalloc" not in top and "zrealloc" not in top and \
                "ztrymalloc" not in top:
            fail("redis's allocation sites (zmalloc...) not in the profile")
        r = launcher(args, ["detach", str(p.pid)])
        if r.returncode != 0:
            fail("detach from redis-server failed")
        if redis_cli(port, "llen", "list3").stdout.strip() != "40":
            fail("redis-server lost data across attach/detach")
        redis_cli(port, "shutdown", "nosave")
        if p.wait(timeout=60) != 0:
            fail("redis-server exited with %d" % p.returncode)
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait()
    print("redis: attached, profiled, detached; still serving", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", required=True,
                    choices=("live", "refused", "redis"))
    ap.add_argument("--launcher", required=True)
    ap.add_argument("--lib", required=True)
    ap.add_argument("--workload", required=True)
    ap.add_argument("--static-workload")
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    if shutil.which("gdb") is None:
        skip("gdb not found (scripts/deps.sh installs it)")
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    os.chmod(args.workdir, 0o755)
    {"live": case_live, "refused": case_refused, "redis": case_redis}[
        args.case](args)
    print("check_attach_cmd: ok", flush=True)


if __name__ == "__main__":
    main()
