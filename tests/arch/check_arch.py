#!/usr/bin/env python3
"""Architecture checks on the library, run as ctests.

  check_arch.py layers OBJ|DIR... the object files' symbol graph has no cycle
  check_arch.py length DIR...   no function in DIR's .c files runs past 150 lines

layers: file A depends on file B when A's object has an undefined symbol
that B's object defines (nm). A cycle of two or more files means a lower
layer calls up into a higher one; the check names every file of each
cycle and, for each edge inside it, the symbols that make it.
length: a definition is written as the style asks (return type on its own
line, name at column 0, `{` and `}` at column 0), so its body is the lines
between a `{` at column 0 and the next `}` at column 0.
"""
import os
import re
import subprocess
import sys

MAX_LINES = 150
# Functions allowed over the limit while a split is under way (none now:
# merge_part became a helper per table with the profile builder).
KNOWN_LONG = set()


def symbols(obj):
    out = subprocess.run(["nm", "-P", obj], check=True, capture_output=True,
                         text=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        name, kind = parts[0], parts[1]
        if kind in "Uwv":
            undefined.add(name)
        elif kind in "TDBRVW":
            defined.add(name)
    return defined, undefined


def stem(path):
    base = os.path.basename(path)
    return base.split(".")[0]


def cycles(graph):
    """Strongly connected components of size >= 2 (Tarjan)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def object_files(args):
    """Each argument is an object file, a ;-list of them (CMake's
    $<TARGET_OBJECTS>) or a directory searched for *.o."""
    out = []
    for a in args:
        for p in a.split(";"):
            if os.path.isdir(p):
                for root, _, files in os.walk(p):
                    out += [os.path.join(root, f) for f in sorted(files)
                            if f.endswith(".o")]
            elif p:
                out.append(p)
    return out


def check_layers(args):
    objs = object_files(args)
    defs, undefs = {}, {}
    for o in objs:
        defs[stem(o)], undefs[stem(o)] = symbols(o)
    owner = {}
    for f, names in defs.items():
        for n in names:
            owner.setdefault(n, f)
    graph = {f: set() for f in defs}
    why = {}
    for f, names in undefs.items():
        for n in names:
            g = owner.get(n)
            # Only the library's own names: the fronts also define malloc,
            # free and friends, which every file calls as libc's.
            # A *_anchor is a link instruction, not a use: the malloc front
            # names the lifecycle's so that a static link keeps it.
            if not n.startswith(("hp_", "heapprof_")) or n.endswith("_anchor"):
                continue
            if g is not None and g != f:
                graph[f].add(g)
                why.setdefault((f, g), []).append(n)
    found = cycles(graph)
    for comp in found:
        print("cycle of %d files: %s" % (len(comp), " ".join(comp)))
        for f in comp:
            for g in sorted(graph[f]):
                if g in comp:
                    print("  %s -> %s: %s" % (f, g, " ".join(sorted(why[(f, g)])[:6])))
    if not found:
        print("no cycle among %d object files" % len(objs))
    return 1 if found else 0


NAME = re.compile(r"^(?:[A-Za-z_][^(;=]*?[\s*])?([A-Za-z_][A-Za-z0-9_]*)\s*\(")


def long_functions(path):
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = fh.read().split("\n")
    out, name, start = [], None, None
    for i, line in enumerate(lines):
        m = NAME.match(line)
        if m and start is None:
            name = m.group(1)
        if line.startswith("{") and start is None:
            start = i
        elif line.startswith("}") and start is not None:
            n = i - start + 1
            if n > MAX_LINES and name is not None:
                out.append((path, start + 1, name, n))
            start, name = None, None
    return out


def check_length(dirs):
    bad = []
    for d in dirs:
        for root, _, files in os.walk(d):
            for f in sorted(files):
                if f.endswith(".c"):
                    bad += long_functions(os.path.join(root, f))
    for path, line, name, n in bad:
        print("%s:%d: %s is %d lines (limit %d)" % (path, line, name, n, MAX_LINES))
    if not bad:
        print("no function over %d lines" % MAX_LINES)
    return 1 if bad else 0


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("layers", "length"):
        print(__doc__)
        return 2
    if sys.argv[1] == "layers":
        return check_layers(sys.argv[2:])
    return check_length(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
