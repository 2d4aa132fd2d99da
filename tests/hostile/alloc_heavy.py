# Hostile host workload for /usr/bin/python3.11: dicts, lists, strings,
# json round trips, large bytes objects (which bypass pymalloc and reach
# malloc), and a few threads. Prints one deterministic line.
import hashlib
import json
import threading


def build(n, salt):
    d = {}
    for i in range(n):
        d["k%d-%s" % (i, salt)] = [i, i * 2, {"v": str(i) * 3, "f": i / 7}]
    return d


def work(salt, out):
    d = build(15000, salt)
    s = json.dumps(d, sort_keys=True)
    e = json.loads(s)
    big = [bytes(600 + (i * 131) % 70000) for i in range(300)]
    out[salt] = (len(s), len(e), sum(len(b) for b in big))


results = {}
threads = [threading.Thread(target=work, args=(str(t), results))
           for t in range(3)]
for t in threads:
    t.start()
work("main", results)
for t in threads:
    t.join()

d = build(30000, "x")
text = json.dumps(d, sort_keys=True)
digest = hashlib.sha256(text.encode()).hexdigest()
words = sorted(set(text.split('"')))
print(sorted(results.items()), len(words), digest)
