#!/usr/bin/env python3
"""Turns the raw results of bench/run.sh into docs/PERFORMANCE.md (stdout).

usage: report.py RESULTS_DIR

RESULTS_DIR holds raw.tsv (kind, workload, config, round, values...; kinds
alloc, heaptrack, sampled, export, start, callgrind, redis, nginx),
facts.tsv (key, value), perf_mixed.txt and, if present, the hand-written
bench/analysis.md is appended under its own heading.
"""
import math
import os
import statistics
import sys
from collections import defaultdict

out_dir = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))

facts = {}
with open(os.path.join(out_dir, "facts.tsv")) as f:
    for line in f:
        k, _, v = line.rstrip("\n").partition("\t")
        facts[k] = v

rows = []
with open(os.path.join(out_dir, "raw.tsv")) as f:
    for line in f:
        rows.append(line.rstrip("\n").split("\t"))


def num(s):
    try:
        return float(s)
    except ValueError:
        return None


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec="{:.3f}"):
    return "n/a" if x is None else spec.format(x)


# ------------------------------------------------------------ allocation
WORKLOADS = ["small", "mixed", "mixed2"]
CONFIGS = ["glibc", "shim", "heapprof", "heapprof_rate0", "jemalloc", "jemalloc_prof",
           "heapprof_jemalloc", "shim_jemalloc", "tcmalloc", "tcmalloc_sample"]
LABEL = {
    "glibc": "glibc (bare)",
    "shim": "forwarding-only shim (the floor)",
    "heapprof": "heapprof, default rate (512 KiB)",
    "heapprof_rate0": "heapprof, HEAPPROF_RATE=0",
    "jemalloc": "jemalloc",
    "jemalloc_prof": "jemalloc + prof (lg_prof_sample:19)",
    "heapprof_jemalloc": "heapprof over jemalloc",
    "shim_jemalloc": "forwarding shim over jemalloc",
    "tcmalloc": "tcmalloc (gperftools, no sampling)",
    "tcmalloc_sample": "tcmalloc, sampling @512 KiB",
}
# (workload, config) -> {round: seconds}, for CPU time (the primary
# metric: user + system time of the process, steady on a shared VM) and for
# wall time.
# Minor page faults of the workload, where alloc_bench printed them.
alloc = {"cpu": defaultdict(dict), "wall": defaultdict(dict),
         "faults": defaultdict(dict)}
for r in rows:
    if r[0] == "alloc" and len(r) >= 6:
        alloc["wall"][(r[1], r[2])][int(r[3])] = num(r[4])
        alloc["cpu"][(r[1], r[2])][int(r[3])] = num(r[5])
        if len(r) >= 7 and num(r[6]) is not None:
            alloc["faults"][(r[1], r[2])][int(r[3])] = num(r[6])


# rate sweep: config ("glibc" or the rate) -> {round: cpu s}; samples per run
sweep = defaultdict(dict)
sweep_samples = {}
for r in rows:
    if r[0] == "rate" and len(r) >= 5 and num(r[4]):
        sweep[r[1]][int(r[2])] = num(r[4])
    elif r[0] == "rate_samples" and len(r) >= 3 and num(r[2]) is not None:
        sweep_samples[r[1]] = num(r[2])


def median_s(w, c, m="cpu"):
    return med(alloc[m][(w, c)].values())


def paired_ratio(w, c, base, m="cpu"):
    a, b = alloc[m][(w, c)], alloc[m][(w, base)]
    rs = [a[k] / b[k] for k in a if k in b and a[k] and b[k]]
    return med(rs)


def median_ci(xs, level=0.95):
    """Distribution-free confidence interval of a median: the order
    statistics r_k and r_(n-k+1) with the largest k for which
    P(Binomial(n, 1/2) < k) <= (1 - level) / 2. None below 6 values."""
    xs = sorted(x for x in xs if x is not None)
    n = len(xs)
    if n < 6:
        return None
    k, tail = 0, 0.0
    while True:
        p = math.comb(n, k) / 2 ** n
        if tail + p > (1 - level) / 2:
            break
        tail += p
        k += 1
    if k == 0:
        return None
    return xs[k - 1], xs[n - k]


def paired_ratios(w, c, base, m="cpu"):
    """Per-round ratios c/base, keyed by round."""
    a, b = alloc[m][(w, c)], alloc[m][(w, base)]
    return {k: a[k] / b[k] for k in a if k in b and a[k] and b[k]}


def ci_text(ci, spec="{:.3f}"):
    return "" if ci is None else f", 95 % CI {spec.format(ci[0])}–{spec.format(ci[1])}"


def ratio_of_medians(w, c, base, m="cpu"):
    a, b = median_s(w, c, m), median_s(w, base, m)
    return a / b if a and b else None


COMPARISONS = [
    ("heapprof vs glibc", "heapprof", "glibc"),
    ("forwarding shim (floor) vs glibc", "shim", "glibc"),
    ("heapprof rate 0 vs glibc", "heapprof_rate0", "glibc"),
    ("heapprof vs forwarding shim", "heapprof", "shim"),
    ("heapprof over jemalloc vs jemalloc", "heapprof_jemalloc", "jemalloc"),
    ("forwarding shim over jemalloc vs jemalloc", "shim_jemalloc", "jemalloc"),
    ("jemalloc prof vs jemalloc", "jemalloc_prof", "jemalloc"),
    ("tcmalloc sampling vs tcmalloc", "tcmalloc_sample", "tcmalloc"),
    ("jemalloc vs glibc", "jemalloc", "glibc"),
    ("tcmalloc vs glibc", "tcmalloc", "glibc"),
]

heaptrack = {"cpu": defaultdict(dict), "wall": defaultdict(dict)}
for r in rows:
    if r[0] == "heaptrack" and len(r) >= 6:
        heaptrack["wall"][(r[1], r[2])][int(r[3])] = num(r[4])
        heaptrack["cpu"][(r[1], r[2])][int(r[3])] = num(r[5])


def ht_ratio(w, m="cpu"):
    a = heaptrack[m][(w, "heaptrack_short")]
    b = heaptrack[m][(w, "glibc_short")]
    rs = [a[k] / b[k] for k in a if k in b and a[k] and b[k]]
    return med(rs)


# --------------------------------------------------------- sampled path
# rate -> [(pair wall ns, pair CPU ns, malloc p50, p99, free p50, p99)]
sampled = defaultdict(list)
for r in rows:
    if r[0] == "sampled":
        sampled[r[2]].append([num(x) for x in r[4:10]])


def sampled_med(rate, i):
    return med([v[i] for v in sampled[rate] if len(v) > i])


pair1, pair0 = sampled_med("1", 1), sampled_med("0", 1)
sampled_cost = pair1 - pair0 if pair1 is not None and pair0 is not None else None

# ------------------------------------------- one sample in place, counted
# (bench/sample_cost.py) function -> (instructions, L1d misses, L2 misses)
sampcost = {}
sampcost_n = None
sampcost_run = {}  # config -> whole run's counts over the shim's
for r in rows:
    if r[0] == "sampcost_run" and len(r) >= 5:
        sampcost_run[r[1]] = (num(r[2]), num(r[3]), num(r[4]))
    if r[0] == "sampcost" and len(r) >= 5:
        if r[1] == "#samples":
            sampcost_n = (int(num(r[2])), int(num(r[3])))
        else:
            sampcost[r[1]] = (num(r[2]), num(r[3]), num(r[4]))

# --------------------------------------------------------------- export
export = defaultdict(list)
for r in rows:
    if r[0] == "export":
        export[r[1]].append(num(r[4]))
export_warm = med(export["warm_ms_median"])
export_warm_cpu = med(export["warm_cpu_ms_median"])

# ---------------------------------------------------------------- start
start = defaultdict(list)
for r in rows:
    if r[0] == "start":
        start[r[2]].append(num(r[4]))
start_bare = med(start["glibc"])
start_hp = med(start["heapprof"])

# --------------------------------------------------------------- memory
# heap key ("64", or "64x1MiB" for a heap of 1 MiB blocks) -> config ->
# [(heap bytes, rss KiB, metadata bytes or None)]
memory = defaultdict(lambda: defaultdict(list))
for r in rows:
    if r[0] == "memory" and len(r) >= 6:
        memory[r[1]][r[2]].append((num(r[4]), num(r[5]),
                                   num(r[6]) if len(r) > 6 and r[6] else None))


def mem_keys():
    return sorted(memory, key=lambda k: (int(k.split("x")[0]), k))


def mem_blocks(key):
    return "1 MiB" if key.endswith("x1MiB") else "16 B – 64 KiB"


def mem_figures(key):
    """(heap bytes, RSS delta bytes, metadata bytes) medians, or None."""
    hp, bare = memory[key]["heapprof"], memory[key]["glibc"]
    if not hp or not bare:
        return None
    heap = med([h for h, _, _ in hp if h])
    delta = med([x[1] for x in hp if x[1]]) - med([x[1] for x in bare if x[1]])
    meta = med([m for _, _, m in hp if m is not None])
    return heap, delta * 1024, meta


# ------------------------------------------------------------ callgrind
cg = {}
for r in rows:
    if r[0] == "callgrind":
        cg[r[2]] = num(r[4])

# --------------------------------------------------------- real servers
# (kind, test) -> config -> {round: requests/s}
servers = defaultdict(lambda: defaultdict(dict))
for r in rows:
    if r[0] in ("redis", "nginx", "pgbench") and len(r) >= 5 and num(r[4]):
        servers[(r[0], r[1])][r[2]][int(r[3])] = num(r[4])
SERVER_KEYS = set(servers)  # before any lookup adds empty entries
# kind -> config -> {round: server CPU ns per request}
srvcpu = defaultdict(lambda: defaultdict(dict))
for r in rows:
    if r[0] == "srvcpu" and len(r) >= 5 and num(r[4]):
        srvcpu[r[1]][r[2]][int(r[3])] = num(r[4])
SRVCPU_KINDS = set(srvcpu)
REDIS_TESTS = [t for t in ["SET", "GET", "LPUSH", "LRANGE_100"]
               if ("redis", t) in SERVER_KEYS]
REDIS_CONFIGS = [("bare", "redis-server (bare)"),
                 ("shim", "LD_PRELOAD=forwarding shim"),
                 ("heapprof", "LD_PRELOAD=libheapprof.so, default rate"),
                 ("heapprof_rate0", "LD_PRELOAD=libheapprof.so, HEAPPROF_RATE=0")]
NGINX_CONFIGS = [("bare", "nginx, no module"),
                 ("module_off", "module loaded, `heapprof_enabled off`"),
                 ("module_on", "module on, default rate")]


def srv_med(kind, test, c):
    return med(servers[(kind, test)][c].values())


def srv_ratio(kind, test, c, base="bare"):
    a, b = servers[(kind, test)][c], servers[(kind, test)][base]
    return med([a[k] / b[k] for k in a if k in b and a[k] and b[k]])


def srv_spread(kind, test, c="bare"):
    """Run-to-run spread of one configuration: (max - min) / median."""
    xs = list(servers[(kind, test)][c].values())
    m = med(xs)
    return (max(xs) - min(xs)) / m if len(xs) > 1 and m else None


def server_bar(kind, tests, c, label):
    tests = [t for t in tests if (kind, t) in SERVER_KEYS]
    ratios = {t: srv_ratio(kind, t, c) for t in tests}
    ratios = {t: x for t, x in ratios.items() if x is not None}
    if not ratios:
        return None
    worst_t = min(ratios, key=ratios.get)
    worst = ratios[worst_t]
    spreads = [x for x in (srv_spread(kind, t) for t in tests) if x is not None]
    spread = max(spreads) if spreads else None
    val = ", ".join(f"{t} {ratios[t]:.3f}×" for t in tests if t in ratios) \
        if len(ratios) > 1 else f"{worst:.3f}×"
    val += f" (bare spread {fmt(None if spread is None else spread * 100, '{:.1f}')} %)"
    # A 2 % bar cannot be judged when bare itself moves by more than 2 %
    # from round to round, whichever way the ratio points.
    if spread is not None and spread > 0.02 and 1 - worst <= spread:
        verdict = f"within noise (spread {spread * 100:.1f} %)"
    elif worst >= 0.98:
        verdict = "met"
    else:
        verdict = "**missed**"
    return (label, val, verdict)


def cpu_med(kind, c):
    return med(srvcpu[kind][c].values())


def cpu_ratio(kind, c, base="bare"):
    a, b = srvcpu[kind][c], srvcpu[kind][base]
    return med([a[k] / b[k] for k in a if k in b and a[k] and b[k]])


def cpu_spread(kind, c="bare"):
    xs = list(srvcpu[kind][c].values())
    m = med(xs)
    return (max(xs) - min(xs)) / m if len(xs) > 1 and m else None


def cpu_bar(kind, c, label):
    if kind not in SRVCPU_KINDS:
        return None
    x, sp = cpu_ratio(kind, c), cpu_spread(kind)
    if x is None:
        return None
    val = f"{x:.3f}× (bare spread {fmt(None if sp is None else sp * 100, '{:.1f}')} %)"
    if x <= 1.02:
        v = "met"
    elif sp is not None and sp > 0.02 and x - 1 <= sp:
        v = f"within noise (spread {sp * 100:.1f} %)"
    else:
        v = "**missed**"
    return (label, val, v)


# ---------------------------------------------------------------- bars
bars = []
for w in ["mixed", "mixed2"]:
    x = paired_ratio(w, "heapprof", "glibc")
    ci = median_ci(paired_ratios(w, "heapprof", "glibc").values())
    ok = x is not None and x <= 1.05
    shim = paired_ratio(w, "shim", "glibc")
    if not ok and shim is not None and abs(shim - 1) > 0.03:
        # A forwarding shim does nothing a workload could feel: when it
        # moves by more than 3 % the rounds measured the machine.
        over = paired_ratio(w, "heapprof", "shim")
        ok = (f"**missed** in this run, whose forwarding shim measured "
              f"{shim:.3f}× (heapprof over the shim {fmt(over, '{:.3f}×')})")
    elif not ok and ci is not None and ci[0] <= 1.05:
        ok = "**missed** by the median; the 95 % interval reaches under the bar"
    elif ok is True and ci is not None and ci[1] > 1.05:
        ok = "met by the median; the 95 % interval reaches over the bar"
    bars.append((f"{w}: heapprof ≤ 1.05× glibc", fmt(x, "{:.3f}×") + ci_text(ci), ok))
for w in ["mixed", "mixed2"]:  # issue 17: the interposition floor
    x = paired_ratio(w, "heapprof", "shim")
    ci = median_ci(paired_ratios(w, "heapprof", "shim").values())
    ok = x is not None and x <= 1.01
    if ci is not None and ci[0] <= 1.01 < ci[1]:
        ok = ("met by the median; the 95 % interval reaches over the bar" if ok
              else "**missed** by the median; the 95 % interval reaches under the bar")
    bars.append((f"{w}: heapprof ≤ 1.01× the forwarding shim (issue 17)",
                 fmt(x, "{:.3f}×") + ci_text(ci), ok))
if "heapprof" in sampcost_run:
    ir, _, ll = sampcost_run["heapprof"]
    bars.append(("mixed, counted (sample_cost.py): instructions and L2-sized misses "
                 "≤ 1.01× the shim's (issue 17)",
                 f"{ir:.4f}× and {ll:.4f}×", ir <= 1.01 and ll <= 1.01))
x = paired_ratio("small", "heapprof", "glibc")
floor = paired_ratio("small", "shim", "glibc")
bars.append(("small: heapprof ≤ floor + 3 % (issue 7)",
             f"{fmt(x, '{:.3f}×')} vs floor {fmt(floor, '{:.3f}×')}",
             x is not None and floor is not None and x <= floor + 0.03))
x = paired_ratio("small", "heapprof_jemalloc", "jemalloc")
floor = paired_ratio("small", "shim_jemalloc", "jemalloc")
if x is not None and floor is not None:
    bars.append(("small, over jemalloc: heapprof ≤ floor + 3 %",
                 f"{fmt(x, '{:.3f}×')} vs floor {fmt(floor, '{:.3f}×')} (jemalloc-prof "
                 f"{fmt(paired_ratio('small', 'jemalloc_prof', 'jemalloc'), '{:.3f}×')})",
                 x <= floor + 0.03))
def overhead_gap(w, config, base):
    """Per round, heapprof's overhead minus jemalloc-prof's (points), the
    same round's runs paired: its median's 95 % interval says whether the
    ordering is the machine's noise."""
    hp = paired_ratios(w, config, base)
    je = paired_ratios(w, "jemalloc_prof", "jemalloc")
    return median_ci([(hp[k] - je[k]) * 100 for k in hp if k in je])


def below_jemalloc_prof(w, label, config, base):
    hp = paired_ratio(w, config, base)
    je = paired_ratio(w, "jemalloc_prof", "jemalloc")
    ci = overhead_gap(w, config, base)
    ok = hp is not None and je is not None and hp < je
    if ci is not None and ci[0] < 0 < ci[1]:
        ok = ("met by the median; the difference's 95 % interval spans 0"
              if ok else "**missed** by the median; the difference's 95 % "
              "interval spans 0")
    gap = "" if ci is None else f" (difference, 95 % CI {ci[0]:+.1f} to {ci[1]:+.1f} points)"
    bars.append((label,
                 f"{fmt(None if hp is None else (hp - 1) * 100, '{:+.1f}')} % vs "
                 f"{fmt(None if je is None else (je - 1) * 100, '{:+.1f}')} %" + gap,
                 ok))


for w in WORKLOADS:
    below_jemalloc_prof(w, f"{w}: heapprof overhead below jemalloc-prof's",
                        "heapprof", "glibc")
    below_jemalloc_prof(w, f"{w}: same, both over jemalloc",
                        "heapprof_jemalloc", "jemalloc")
cg_extra = cg["heapprof"] - cg["shim"] if "heapprof" in cg and "shim" in cg else None
bars.append(("unsampled malloc+free: a handful (≤ 5) of instructions over the "
             "forwarding shim (callgrind)",
             fmt(cg_extra, "{:+.1f} instructions / pair"),
             cg_extra is not None and cg_extra <= 5))
m99 = sampled_med("1", 3)
bars.append(("sampled path ≤ 2 µs (mean CPU, rate 1 − rate 0, depth 64)",
             fmt(sampled_cost, "{:.0f} ns"),
             sampled_cost is not None and sampled_cost <= 2000))
bars.append(("sampled malloc p99 ≤ 2 µs (issue 7; includes ~25 ns of clock)",
             fmt(m99, "{:.0f} ns"), m99 is not None and m99 <= 2000))
bars.append(("export of 100 000 buckets, depth 32, warm ≤ 200 ms",
             f"{fmt(export_warm, '{:.0f} ms')} wall, "
             f"{fmt(export_warm_cpu, '{:.0f} ms')} CPU",
             export_warm is not None and export_warm <= 200))

for key in mem_keys():
    f = mem_figures(key)
    if f is None:
        continue
    heap, delta, meta = f
    limit = 0.02 * heap + 8 * 2**20
    what = f"{heap / 2**20:.0f} MiB live heap of {mem_blocks(key)} blocks"
    bars.append((f"memory, {what}: metadata ≤ 2 % of heap + 8 MiB",
                 f"{fmt(None if meta is None else meta / 2**20, '{:.1f}')} MiB "
                 f"(limit {limit / 2**20:.1f} MiB, see Memory)",
                 meta is not None and meta <= limit))
    bars.append((f"memory, {what}: RSS ≤ bare + 2 % of heap + 8 MiB",
                 f"{delta / 2**20:+.1f} MiB (limit {limit / 2**20:.1f} MiB)",
                 delta <= limit))
b = server_bar("redis", REDIS_TESTS, "heapprof",
               "redis-benchmark within 2 % of bare (requests/s, heapprof ÷ bare)")
if b:
    bars.append(b)
b = server_bar("nginx", ["return200"], "module_on",
               "wrk against nginx within 2 % of bare (module on ÷ no module)")
if b:
    bars.append(b)
b = cpu_bar("redis", "heapprof",
            "redis-server CPU per request within 2 % of bare (heapprof ÷ bare)")
if b:
    bars.append(b)
b = cpu_bar("nginx", "module_on",
            "nginx CPU per request within 2 % of bare (module on ÷ no module)")
if b:
    bars.append(b)


def verdict(ok):
    return ok if isinstance(ok, str) else ("met" if ok else "**missed**")


# ------------------------------------------------------------- output
P = print


def table_head(first, columns):
    """A markdown table's header row and rule: `first`, then `columns`."""
    P(f"| {first} | " + " | ".join(columns) + " |")
    P("|---|" + "---|" * len(columns))


P("# heapprof performance")
P()
P("Generated by `bench/run.sh` (do not edit by hand; re-run it). Timings are")
P("never asserted in tests. The bars come from `SPEC.md` and issue 7.")
P()
P("## Machine and run")
P()
P("| | |")
P("|---|---|")
for k in ["cpu", "nproc", "mem", "os", "kernel", "glibc", "cc", "jemalloc",
          "gperftools", "heaptrack", "redis", "nginx", "wrk",
          "heapprof_commit", "date", "pairs", "server_rounds",
          "load_start", "load_end"]:
    if k in facts:
        P(f"| {k} | {facts[k]} |")
P()
P("heapprof and the benchmarks are built with `-DCMAKE_BUILD_TYPE=Release` in a")
P("separate tree (`bench/CMakeLists.txt`). The load average is that of the whole")
P("VM: other jobs were running on it, so read small differences with care.")
P(f"Debian's jemalloc is built with its profiler: **{facts.get('jemalloc_prof', '?')}**"
  " (`config.prof` in `malloc_stats_print`).")
P()
P("Commands (what `bench/run.sh` runs for each configuration):")
P()
P("```")
P("alloc_bench small|mixed|mixed2            # bare glibc")
P("LD_PRELOAD=libforwarding_shim.so alloc_bench W   # the floor (bench/forwarding_shim.c)")
P("LD_PRELOAD=libheapprof.so alloc_bench W   # heapprof, default rate")
P("HEAPPROF_RATE=0 LD_PRELOAD=libheapprof.so alloc_bench W")
P("LD_PRELOAD=libjemalloc.so.2 alloc_bench W")
P("MALLOC_CONF=prof:true,lg_prof_sample:19 LD_PRELOAD=libjemalloc.so.2 alloc_bench W")
P("LD_PRELOAD=libheapprof.so:libjemalloc.so.2 alloc_bench W")
P("LD_PRELOAD=libforwarding_shim.so:libjemalloc.so.2 alloc_bench W")
P("TCMALLOC_SAMPLE_PARAMETER=0|524288 LD_PRELOAD=libtcmalloc.so.4 alloc_bench W")
P("heaptrack -o FILE alloc_bench W N/10       # short runs, 3 pairs")
P("HEAPPROF_RATE=1|0 LD_PRELOAD=libheapprof.so sampled_path_bench 300000")
P("export_bench 100000 5")
P("LD_PRELOAD=... valgrind --tool=callgrind alloc_bench small 200000|1200000")
P("[LD_PRELOAD=libforwarding_shim.so|libheapprof.so [HEAPPROF_RATE=0]] redis-server --port P --save '' --appendonly no")
P("redis-benchmark -p P -q -n 100000 -c 32 -t set,get,lpush,lrange_100 --csv")
P("nginx -p TMP/ -c TMP/nginx.conf   # [load_module ngx_http_heapprof_module.so; [heapprof_enabled off;]]")
P("wrk -t1 -c32 -d5s http://127.0.0.1:P/")
P("```")
P()
P("Workloads (`bench/alloc_bench.c`): **small** = 20 M malloc/free of 16–128 B")
P("through a ring of 64 live blocks; **mixed** = 1.5 M requests, sizes 16 B–64 KiB")
P("skewed small (70 % ≤ 256 B), 55 % malloc, 15 % calloc, 15 % realloc, 15 % free")
P("over 8192 live blocks, each made under a 10–20-frame recursive call chain;")
P("**mixed2** = the same work split over 2 threads. Each program times its own")
P("workload (start-up excluded).")
P()
P("## Bars")
P()
P("Timed bars use the median of the per-round ratios; the 95 % interval of")
P("that median (distribution-free, from the rounds' order statistics) shows")
P("how far this machine's noise reaches, and a verdict says so when the")
P("interval crosses the bar.")
P()
P("| bar | measured | verdict |")
P("|---|---|---|")
for name, val, ok in bars:
    P(f"| {name} | {val} | {verdict(ok)} |")
P()
P(f"## Allocation workloads: median seconds ({facts.get('pairs', '?')} rounds)")
P()
P("CPU seconds (user + system, all threads) of the workload, then wall seconds.")
P("The bars above use CPU time: on this shared VM a process often got a")
P("fraction of a core, which wall time charges to whichever configuration was")
P("running at the moment.")
P()
P("| configuration | " + " | ".join(f"{w} CPU" for w in WORKLOADS) + " | " +
  " | ".join(f"{w} wall" for w in WORKLOADS) + " |")
P("|---|" + "---|" * (2 * len(WORKLOADS)))
for c in CONFIGS:
    P(f"| {LABEL[c]} | " + " | ".join(fmt(median_s(w, c)) for w in WORKLOADS) +
      " | " + " | ".join(fmt(median_s(w, c, "wall")) for w in WORKLOADS) + " |")
P()
if alloc["faults"]:
    P("## Page faults in the workload (median per run)")
    P()
    P("Minor faults, pages the process touched for the first time during the")
    P("workload: each costs the kernel a few µs that counts of instructions")
    P("do not show. heapprof's sample range is memory of its own, which its")
    P("sampled blocks touch once (bench/analysis.md, issue 17).")
    P()
    table_head("configuration", WORKLOADS)
    for c in CONFIGS:
        P(f"| {LABEL[c]} | " + " | ".join(
            fmt(median_s(w, c, "faults"), "{:.0f}") for w in WORKLOADS) + " |")
    P()
for m, title in [("cpu", "CPU time"), ("wall", "wall time")]:
    P(f"## Overhead ratios, {title}")
    P()
    P("Median of the per-round ratios (ratio of the medians in brackets).")
    P()
    table_head("comparison", WORKLOADS)
    for name, c, base in COMPARISONS:
        cells = [f"{fmt(paired_ratio(w, c, base, m), '{:.3f}×')} "
                 f"({fmt(ratio_of_medians(w, c, base, m), '{:.3f}')})"
                 for w in WORKLOADS]
        P(f"| {name} | " + " | ".join(cells) + " |")
    P("| heaptrack vs glibc (1/10 runs, 3 pairs) | " +
      " | ".join(fmt(ht_ratio(w, m), "{:.2f}×") for w in WORKLOADS) + " |")
    P()
if sweep.get("glibc") and sweep.get("0"):
    P("## Sampling rate and what a sample costs (mixed)")
    P()
    P("`HEAPPROF_RATE` from off to 2 MiB on the mixed workload, "
      f"{max(len(v) for v in sweep.values())} rotated rounds.")
    P("Samples per run come from one untimed run per rate (the profile's")
    P("comments); the cost of a sample in place is the paired CPU time over")
    P("rate 0 divided by them: a sampled allocation and its free, with")
    P("everything the program's own work evicted between two samples.")
    P()
    P("| HEAPPROF_RATE | CPU s | vs glibc | vs rate 0 | samples per run | µs per sample |")
    P("|---|---|---|---|---|---|")
    base, zero = sweep["glibc"], sweep["0"]
    for rate in sorted((k for k in sweep if k != "glibc"), key=int):
        xs = sweep[rate]
        vs_glibc = med([xs[k] / base[k] for k in xs if k in base])
        vs_zero = med([xs[k] / zero[k] for k in xs if k in zero])
        n = sweep_samples.get(rate)
        per = None
        if n and rate != "0":
            per = med([(xs[k] - zero[k]) / n * 1e6 for k in xs if k in zero])
        kib = int(rate) // 1024
        label = ("0 (off)" if rate == "0" else
                 f"{kib // 1024} MiB" if kib >= 1024 else f"{kib} KiB")
        P(f"| {label} | {fmt(med(xs.values()), '{:.3f}')} | {fmt(vs_glibc, '{:.3f}×')} | "
          f"{fmt(vs_zero, '{:.3f}×')} | {fmt(n, '{:.0f}')} | {fmt(per, '{:.2f}')} |")
    P()
P("## Fast paths: callgrind instructions per malloc/free pair (small loop)")
P()
P("Difference between 1 200 000 and 200 000 iterations, divided by 1 000 000;")
P("exact and repeatable, unlike wall time on this VM.")
P()
def cg_table(allocator, base, floor, rows, against_floor):
    """One callgrind table: each row against the bare allocator and, for
    the rows in against_floor, against the forwarding shim over it."""
    P(f"| configuration | instructions / pair | vs {allocator} | vs the forwarding shim over it |")
    P("|---|---|---|---|")
    for c in rows:
        if c not in cg:
            continue
        d = f"{cg[c] - cg[base]:+.1f}" if base in cg and c != base else ""
        e = f"{cg[c] - cg[floor]:+.1f}" if floor in cg and c in against_floor else ""
        P(f"| {LABEL[c]} | {fmt(cg[c], '{:.1f}')} | {d} | {e} |")
    P()


cg_table("glibc", "glibc", "shim", ["glibc", "shim", "heapprof", "heapprof_rate0"],
         ["heapprof", "heapprof_rate0"])
P("Over jemalloc (Debian's libjemalloc2):")
P()
cg_table("jemalloc", "jemalloc", "shim_jemalloc",
         ["jemalloc", "jemalloc_prof", "shim_jemalloc", "heapprof_jemalloc"], ["heapprof_jemalloc"])

if memory:
    P("## Memory (`bench/memory_bench.c`)")
    P()
    P(f"A live heap of the given size (16 B – 64 KiB blocks, 70 % ≤ 256 B, every")
    P(f"byte touched) made from {facts.get('mem_stacks', '?')} distinct stacks, then two heap profiles")
    P("written (so the symbolizer and its caches are loaded). *Metadata* is")
    P("heapprof's own figures from the profile's comments (its internal")
    P("allocator's buckets and live records, plus the fixed tables' resident")
    P("bytes: 2 MiB on one huge page); *RSS delta* is the resident")
    P("set with heapprof minus without at the same point, which also counts")
    P("libdw/libunwind and their caches, and what libdw")
    P("allocated while resolving addresses (freed at the end of the export,")
    P("but kept by the allocator for the program's later use). Medians of 3")
    P("rounds. With glibc's separate debug info installed (`libc6-dbg`, which")
    P("valgrind pulls in here), the first export that resolves a glibc frame")
    P("makes libdw read the abbreviations of glibc's ~2000 compile units:")
    P("at 64 MiB of heap, 2026-12-07, the delta was 8.7–9.2 MiB with it and")
    P("6.2–6.4 MiB with glibc's debug file moved aside (two runs each).")
    P()
    P("The heap of 1 MiB blocks is mostly sampled (a 1 MiB block is sampled")
    P("with probability 1 - e^-2 at the default rate), so most of it lives in")
    P("heapprof's sample range rather than glibc's heap: its RSS delta is what")
    P("the range costs in memory.")
    P()
    P("| live heap | blocks | sampled from | metadata | RSS delta | 2 % of heap + 8 MiB |")
    P("|---|---|---|---|---|---|")
    for key in mem_keys():
        f = mem_figures(key)
        if f is None:
            continue
        heap, delta, meta = f
        P(f"| {heap / 2**20:.0f} MiB | {mem_blocks(key)} | {facts.get('mem_stacks', '?')} stacks | "
          f"{fmt(None if meta is None else meta / 2**20, '{:.2f}')} MiB | "
          f"{delta / 2**20:.2f} MiB | {(0.02 * heap + 8 * 2**20) / 2**20:.1f} MiB |")
    P()
P("## Sampled path (`bench/sampled_path_bench.c`)")
P()
P("malloc(64)/free pairs from 8 leaf sites at the bottom of a 64-frame stack,")
P("under `HEAPPROF_RATE=1` (every allocation: stack capture at depth 64, bucket")
P("lookup, live-table insert, and the live-table removal on free) and")
P("`HEAPPROF_RATE=0`. Each call is timed with `clock_gettime` (about 20–25 ns of")
P("it is the clock itself, in both columns). Medians over the rounds.")
P()
P("| | rate 1 | rate 0 | difference |")
P("|---|---|---|---|")
names = ["pair, mean wall ns", "pair, mean CPU ns", "malloc p50 ns",
         "malloc p99 ns", "free p50 ns", "free p99 ns"]
for i, n in enumerate(names):
    a, b = sampled_med("1", i), sampled_med("0", i)
    d = None if a is None or b is None else a - b
    P(f"| {n} | {fmt(a, '{:.0f}')} | {fmt(b, '{:.0f}')} | {fmt(d, '{:.0f}')} |")
a2, b2 = sampled_med("1x2", 1), sampled_med("0x2", 1)
if a2 is not None and b2 is not None:
    P(f"| pair, mean CPU ns, two threads at once | {a2:.0f} | {b2:.0f} | {a2 - b2:.0f} |")
    P()
    P("The last row runs the same loop in two threads together (means over "
      "both): what the lines a sample shares with other threads cost when "
      "they move between the cores.")
P()
if sampcost and sampcost_n:
    P("## One sample in place, counted (`bench/sample_cost.py`)")
    P()
    P(f"alloc_bench mixed ({sampcost_n[1]} operations, {sampcost_n[0]} samples) under "
      "callgrind's cache simulation, heapprof at the default rate minus "
      "`HEAPPROF_RATE=0`, per sample: instructions, L1 data misses (32 KiB) and "
      "misses of a 512 KiB last level (one core's L2, which the workload's "
      "traffic between two samples evicts). Counted, not timed, so builds "
      "compare on a machine whose timings wander by points; the blocks sampled "
      "differ from run to run (the sampler's seed), which moves a row by up to "
      "a tenth. Negative rows are glibc's work a sampled block no longer does.")
    P()
    if sampcost_run:
        P("The whole run (start-up included) over the forwarding shim's, "
          "counted the same way: the interposition floor in events rather "
          "than in time (how events become cycles depends on the CPU).")
        P()
        P("| whole run / shim | instructions | L1d misses | L2 misses |")
        P("|---|---|---|---|")
        for name, (ir, d1, ll) in sorted(sampcost_run.items()):
            P(f"| {name} | {ir:.4f} | {d1:.4f} | {ll:.4f} |")
        P()
        P("Per sample:")
        P()
    P("| function | instructions | L1d misses | L2 misses |")
    P("|---|---|---|---|")
    for name, (ir, d1, ll) in sorted(sampcost.items(),
                                     key=lambda kv: (kv[0] != "TOTAL", -abs(kv[1][2]))):
        label = "**all**" if name == "TOTAL" else f"`{name}`"
        P(f"| {label} | {ir:.0f} | {d1:.1f} | {ll:.1f} |")
    P()
P("## Export (`bench/export_bench.c`)")
P()
P("100 000 buckets with distinct real depth-32 stacks (made through")
P("`heapprof_on_alloc` at rate 1), written with `heapprof_write_buffer`: encode,")
P("symbolize, gzip. Median over 3 processes of the median of 5 warm calls.")
P()
P("| | value |")
P("|---|---|")
for k, label in [("buckets", "buckets created"), ("profile_bytes", "profile size (bytes)"),
                 ("fill_ms", "filling: 100 000 sampled reports (ms)"),
                 ("cold_ms", "first write, cold symbol cache (ms)"),
                 ("warm_ms_median", "warm write (ms)"),
                 ("warm_cpu_ms_median", "warm write, CPU (ms)"),
                 ("warm_ms_min", "warm write, best (ms)")]:
    P(f"| {label} | {fmt(med(export[k]), '{:.1f}' if 'ms' in k else '{:.0f}')} |")
P()
def cpu_table(kind, configs, versus):
    """Server CPU ns per request: medians, ratios to bare, bare's spread."""
    P(f"| configuration | CPU ns / request | {versus} |")
    P("|---|---|---|")
    for c, label in configs:
        m = cpu_med(kind, c)
        if c == "bare":
            sp = cpu_spread(kind)
            d = f"spread {fmt(None if sp is None else sp * 100, '{:.1f}')} %"
        else:
            d = fmt(cpu_ratio(kind, c), "{:.3f}×")
        P(f"| {label} | {fmt(m, '{:.0f}')} | {d} |")
    P()


if REDIS_TESTS:
    P(f"## redis-benchmark ({facts.get('server_rounds', '?')} rounds)")
    P()
    P("Debian's `redis-server` on a free loopback port (`--save '' --appendonly no`),")
    P("started per round and configuration, stopped by its PID, loaded by")
    P(f"`redis-benchmark -q -n {facts.get('redis_n', '?')} -c 32 "
      "-t set,get,lpush,lrange_100 --csv` on the same machine. Debian's redis")
    P("is linked against libjemalloc: heapprof sits in front of jemalloc's `malloc`.")
    P("Requests/s, medians; ratios are medians of the per-round ratios to bare,")
    P("spread is (max − min) / median of bare over the rounds.")
    P()
    table_head("configuration", REDIS_TESTS)
    for c, label in REDIS_CONFIGS:
        cells = []
        for t in REDIS_TESTS:
            m = srv_med("redis", t, c)
            if c == "bare":
                sp = srv_spread("redis", t)
                cells.append(f"{fmt(m, '{:.0f}')} (spread "
                             f"{fmt(None if sp is None else sp * 100, '{:.1f}')} %)")
            else:
                cells.append(f"{fmt(m, '{:.0f}')} ({fmt(srv_ratio('redis', t, c), '{:.3f}×')})")
        P(f"| {label} | " + " | ".join(cells) + " |")
    P()
    if "redis" in SRVCPU_KINDS:
        P("redis-server's CPU time per request (all its threads, from")
        P("`/proc/PID/task/*/schedstat`, over the four tests): the server's own")
        P("cost, which the client sharing the two cores does not blur as much")
        P("as it does requests/s.")
        P()
        cpu_table("redis", REDIS_CONFIGS, "vs bare")
if ("nginx", "return200") in SERVER_KEYS:
    P(f"## nginx + wrk ({facts.get('server_rounds', '?')} rounds)")
    P()
    P("Debian's nginx, master + 2 workers (`user root;`, temporary `-p` prefix,")
    P("free loopback port with `reuseport`, `location / { return 200 ...; }`),")
    P("started per round and configuration and stopped with `kill -QUIT` of the")
    P(f"master; load `wrk -t1 -c32 -d{facts.get('wrk_seconds', '?')}s` on the same")
    P("machine. The module is the one `cmake --install` puts in")
    P("`lib/nginx/modules/`; when loaded, `location /debug/pprof/ { heapprof; }` is")
    P("configured. Requests/s, medians; ratio = median of per-round ratios to bare.")
    P()
    P("| configuration | requests/s | vs no module |")
    P("|---|---|---|")
    for c, label in NGINX_CONFIGS:
        m = srv_med("nginx", "return200", c)
        if c == "bare":
            sp = srv_spread("nginx", "return200")
            d = f"spread {fmt(None if sp is None else sp * 100, '{:.1f}')} %"
        else:
            d = fmt(srv_ratio("nginx", "return200", c), "{:.3f}×")
        P(f"| {label} | {fmt(m, '{:.0f}')} | {d} |")
    P()
    if "nginx" in SRVCPU_KINDS:
        P("CPU time of the master and workers per request (wrk's request count):")
        P()
        cpu_table("nginx", NGINX_CONFIGS, "vs no module")
if ("pgbench", "C") in servers:
    P("## Fork cost: pgbench -C")
    P()
    P("postgres 15 under `pgbench -C -S -c 4` (a new backend, i.e. a fork, per "
      "transaction; bench/pgbench_fork.sh), connections per second, medians "
      "over rotated rounds; the ratio is the median of per-round ratios.")
    P()
    P("| configuration | connections/s | vs preload |")
    P("|---|---:|---:|")
    for c in ("bare", "preload", "http"):
        if c in servers[("pgbench", "C")]:
            P(f"| {c} | {fmt(srv_med('pgbench', 'C', c), '{:.1f}')} | "
              f"{fmt(srv_ratio('pgbench', 'C', c, 'preload'), '{:.3f}')} |")
    P()
P("## Process start")
P()
if start_bare is not None and start_hp is not None:
    P(f"200 × `/bin/true` from `sh`, every process preloaded: "
      f"{start_bare / 200 / 1000:.2f} ms per exec bare, "
      f"{start_hp / 200 / 1000:.2f} ms with heapprof "
      f"(+{(start_hp - start_bare) / 200 / 1000:.2f} ms each; medians of "
      f"{facts.get('pairs', '?')} pairs).")
P()
perf_path = os.path.join(out_dir, "perf_mixed.txt")
if os.path.exists(perf_path) and os.path.getsize(perf_path) > 0:
    P("## Where the time goes: heapprof, mixed workload")
    P()
    P("`perf record -e cpu-clock` (no hardware counters on this VM), top symbols:")
    P()
    P("```")
    with open(perf_path) as f:
        for line in f:
            P(line.rstrip())
    P("```")
    P()
P("## Reading")
P()
missed = [name for name, _, ok in bars if "missed" in verdict(ok)]
if missed:
    P("Bars missed in this run: " + "; ".join(missed) + ".")
else:
    P("Every bar was met in this run.")
P()
analysis = os.path.join(here, "analysis.md")
if os.path.exists(analysis):
    with open(analysis) as f:
        P(f.read().rstrip())
    P()
