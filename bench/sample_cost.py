#!/usr/bin/python3
"""What one sample costs in place, counted rather than timed.

Runs alloc_bench (mixed) under callgrind's cache simulation three times:
with libheapprof.so preloaded at HEAPPROF_RATE=0 and at the default rate,
and with the forwarding shim (bench/forwarding_shim.c, the interposition
floor). Prints the whole run's counts over the shim's, then the
difference between the two rates per sample: instructions, level-1 data misses and
misses of a last level the size of one core's L2 (512 KiB), which the
workload's own traffic between two samples evicts. Per function, so that
heapprof's own lines and what its samples cost the host and glibc (copies,
zeroing, their evicted lines) show side by side. Counted, not timed, so two
builds compare on a machine whose timings wander by points from hour to
hour; the blocks sampled differ from run to run (the sampler's seed), which
moves a row by up to a tenth. The cycles the counts stand for depend on
the CPU.

  bench/sample_cost.py BUILD_DIR [OPS]        (default 1500000 operations)

BUILD_DIR holds alloc_bench, heapprof/libheapprof.so and
libforwarding_shim.so (bench/run.sh's Release build). RAW=FILE appends
"sampcost<TAB>function<TAB>Ir<TAB>D1<TAB>LL" rows (per sample) and
"sampcost_run<TAB>config<TAB>Ir<TAB>D1<TAB>LL" rows (whole run, ratio to
the shim) for bench/report.py. Not part of CI.
"""

import os
import re
import subprocess
import sys
import tempfile

CACHES = ["--I1=32768,8,64", "--D1=32768,8,64", "--LL=524288,8,64"]
EVENTS = "Ir,D1mr,D1mw,DLmr,DLmw"
# "Ir (pct) D1mr (pct) ... function": five counts ("." for none), then a name.
ROW = re.compile(r"\s*" + r"([\d,]+|\.)(?: \([^)]*\))?\s+" * 5 + r"(\S.*)$")
SAMPLE_FN = "record_sample"  # called once per sample (src/record.c)


def callgrind(build, ops, rate, out):
    """rate None: the forwarding shim instead of heapprof."""
    lib = (os.path.join(build, "libforwarding_shim.so") if rate is None
           else os.path.join(build, "heapprof", "libheapprof.so"))
    env = dict(os.environ, LD_PRELOAD=lib)
    env.pop("HEAPPROF_RATE", None)
    if rate is not None:
        env["HEAPPROF_RATE"] = str(rate)
    return subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--cache-sim=yes", *CACHES,
         "--callgrind-out-file=" + out, os.path.join(build, "alloc_bench"), "mixed", str(ops)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def per_function(out):
    """{function: [Ir, D1 misses, LL misses]} over the whole run."""
    text = subprocess.run(["callgrind_annotate", "--show=" + EVENTS, "--threshold=100", out],
                          capture_output=True, text=True, check=True).stdout
    table = {}
    for line in text.splitlines():
        m = ROW.match(line)
        if not m:
            continue
        name = m.group(6).strip()
        # Drop the object's path and the anonymous-file markers.
        name = "TOTAL" if "PROGRAM TOTALS" in name else re.sub(r"\s*\[[^\]]*\]$", "", name)
        name = re.sub(r"^.*:", "", name) if name != "TOTAL" else name
        ir, d1r, d1w, llr, llw = (0 if v == "." else int(v.replace(",", "")) for v in m.groups()[:5])
        got = table.setdefault(name, [0, 0, 0])
        got[0] += ir
        got[1] += d1r + d1w
        got[2] += llr + llw
    return table


def samples(out):
    """Calls of SAMPLE_FN, from callgrind's own file."""
    ids, calls, current = set(), 0, None
    with open(out) as f:
        for line in f:
            m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line)
            if m:
                if m.group(2) is not None and m.group(2).strip() == SAMPLE_FN:
                    ids.add(m.group(1))
                current = m.group(1) if line.startswith("cfn=") else None
                continue
            m = re.match(r"calls=(\d+)", line)
            if m and current in ids:
                calls += int(m.group(1))
    return calls


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    build = sys.argv[1]
    ops = int(sys.argv[2]) if len(sys.argv) > 2 else 1500000
    runs = {"heapprof": 524288, "heapprof_rate0": 0, "shim": None}
    with tempfile.TemporaryDirectory() as tmp:
        outs = {name: os.path.join(tmp, "cg." + name) for name in runs}
        procs = [callgrind(build, ops, runs[name], out) for name, out in outs.items()]
        if any(p.wait() != 0 for p in procs):
            sys.exit("sample_cost: a callgrind run failed")
        n = samples(outs["heapprof"])
        if n == 0:
            sys.exit("sample_cost: no sample was recorded (is %s a heapprof build?)" % build)
        counts = {name: per_function(out) for name, out in outs.items()}
    base, sampled = counts["heapprof_rate0"], counts["heapprof"]
    shim = counts["shim"]["TOTAL"]
    over_shim = {name: [c / s for c, s in zip(counts[name]["TOTAL"], shim)]
                 for name in ("heapprof", "heapprof_rate0")}
    print("alloc_bench mixed %d, whole run over the forwarding shim:" % ops)
    print("%-40s %9s %9s %9s" % ("", "instr", "L1d miss", "L2 miss"))
    for name, ratios in over_shim.items():
        print("%-40s %9.4f %9.4f %9.4f" % (name, *ratios))
    print()
    rows = []
    for name in set(base) | set(sampled):
        b, s = base.get(name, [0, 0, 0]), sampled.get(name, [0, 0, 0])
        rows.append((name, *[(y - x) / n for x, y in zip(b, s)]))
    total = next(r for r in rows if r[0] == "TOTAL")
    rows = sorted((r for r in rows if r[0] != "TOTAL"), key=lambda r: -abs(r[3]))[:14]
    print("alloc_bench mixed %d: %d samples; per sample, default rate minus rate 0" % (ops, n))
    print("%-40s %9s %9s %9s" % ("function", "instr", "L1d miss", "L2 miss"))
    for name, ir, d1, ll in [total] + rows:
        print("%-40s %9.0f %9.1f %9.1f" % (name[:40], ir, d1, ll))
    raw = os.environ.get("RAW")
    if raw:
        with open(raw, "a") as f:
            f.write("sampcost\t#samples\t%d\t%d\t0\n" % (n, ops))
            for name, ratios in over_shim.items():
                f.write("sampcost_run\t%s\t%.5f\t%.5f\t%.5f\n" % (name, *ratios))
            for name, ir, d1, ll in [total] + rows:
                f.write("sampcost\t%s\t%.1f\t%.2f\t%.2f\n" % (name, ir, d1, ll))


if __name__ == "__main__":
    main()
