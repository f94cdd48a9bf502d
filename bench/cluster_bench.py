#!/usr/bin/env python3
"""Once on a cluster of 3 masters vs one node: the same 30 queues, the same producers and workers, jobs/s both ways.

Starts (redis-server 7.0, module loaded, no persistence) one standalone node and a cluster of 3 masters without
replicas (tests/cluster/cluster_harness.py); 30 queues are spread evenly over the cluster's slots (10 per master).
For each setup, `--reps` times, interleaved:

- push:  P producer processes push `--jobs` 16-byte jobs round-robin over the 30 queues, 64 ONCE.PUSH per round
         trip (grouped by owner: one batch per node, all written before any reply is read);
- drain: W worker processes each own 30/W of the queues and drain them with ack-and-fetch
         (`ONCE.RESERVE q ACK <previous>`: one job per command, each worker pipelining one command per queue it
         owns, every node's batch written before any reply is read), until every queue is empty.

Clients talk RESP over raw sockets straight to each queue's owner (slots computed client side and checked against
CLUSTER SLOTS), so the client code and the commands are identical in both setups; only the number of servers
differs. Server CPU (/proc, user+sys, summed over the nodes) is reported per job. On this 2-core machine the
clients and the 3 servers share 2 CPUs: the figures show what one machine gives, not what 3 machines would.

Run alone, prints one JSON object on stdout (--json PATH also writes it), progress on stderr; `make bench` imports
it (bench/bench.py section 6). --quick: small sizes.
"""
import argparse
import json
import multiprocessing as mp
import os
import socket
import statistics
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))
os.environ.setdefault("ONCE_MODULE", os.path.join(ROOT, "target", "release", "libonce.so"))

import harness  # noqa: E402
import cluster_harness  # noqa: E402

PAYLOAD = b"0123456789abcdef"
HZ = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[cluster-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- a minimal pipelined RESP2 connection ---------------------------------------------------------------------

def enc(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.pos = 0

    def send(self, data):
        self.s.sendall(data)

    def _more(self):
        chunk = self.s.recv(1 << 20)
        if not chunk:
            raise ConnectionError("closed")
        if self.pos:
            self.buf = self.buf[self.pos:]
            self.pos = 0
        self.buf += chunk

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0:
                line = self.buf[self.pos:i]
                self.pos = i + 2
                return line
            self._more()

    def read(self):
        line = self._line()
        t = line[:1]
        if t == b"$":
            n = int(line[1:])
            if n < 0:
                return None
            while len(self.buf) < self.pos + n + 2:
                self._more()
            v = self.buf[self.pos:self.pos + n]
            self.pos += n + 2
            return v
        if t == b"*":
            n = int(line[1:])
            return None if n < 0 else [self.read() for _ in range(n)]
        if t == b":":
            return int(line[1:])
        if t == b"+":
            return line[1:]
        if t == b"-":
            raise RuntimeError(line[1:].decode(errors="replace"))
        raise ValueError(line)


# --- producer and worker processes ----------------------------------------------------------------------------

def producer(route, queues, n, start, out, idx):
    """Pushes n jobs round-robin over queues, 64 per round trip: each round's pushes grouped by owner, every
    node's batch written before any reply is read (the same 64 commands per round trip in both setups)."""
    conns = {p: Conn(p) for p in set(route.values())}
    start.wait()
    t0 = time.perf_counter()
    sent = 0
    while sent < n:
        k = min(64, n - sent)
        batches = {}
        for i in range(k):
            q = queues[(idx + sent + i) % len(queues)]
            batches.setdefault(route[q], []).append(enc(b"ONCE.PUSH", q, PAYLOAD))
        for p, cmds in batches.items():
            conns[p].send(b"".join(cmds))
        for p, cmds in batches.items():
            for _ in cmds:
                conns[p].read()
        sent += k
    out.put(("push", idx, time.perf_counter() - t0, sent))


def worker(route, queues, start, out, idx):
    """Drains its queues with ack-and-fetch, one command per owned queue per round trip, every node at once."""
    conns = {p: Conn(p) for p in set(route.values())}
    by_node = {}
    for q in queues:
        by_node.setdefault(route[q], []).append(q)
    held = {q: None for q in queues}
    start.wait()
    t0 = time.perf_counter()
    done = 0
    live = {p: list(qs) for p, qs in by_node.items()}
    while any(live.values()):
        for p, qs in live.items():
            if qs:
                conns[p].send(b"".join(enc(b"ONCE.RESERVE", q, b"ACK", held[q]) if held[q] else
                                       enc(b"ONCE.RESERVE", q) for q in qs))
        for p, qs in live.items():
            still = []
            for q in qs:
                r = conns[p].read()
                if held[q] is not None:
                    done += 1
                    held[q] = None
                if r:
                    held[q] = r[0][0]
                    still.append(q)
            live[p] = still
    out.put(("drain", idx, time.perf_counter() - t0, done))


def run_phase(kind, route, queue_sets, args_of, procs):
    ctx = mp.get_context("fork")
    start, out = ctx.Barrier(len(queue_sets) + 1), ctx.Queue()
    ps = [ctx.Process(target=kind, args=args_of(i, qs, start, out), daemon=True) for i, qs in enumerate(queue_sets)]
    for p in ps:
        p.start()
    start.wait()
    t0 = time.perf_counter()
    res = [out.get(timeout=600) for _ in ps]
    secs = time.perf_counter() - t0
    for p in ps:
        p.join(10)
    return secs, sum(r[3] for r in res)


def cpu_ticks(servers):
    total = 0
    for s in servers:
        with open(f"/proc/{s.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total


def measure(name, servers, route, queues, cfg):
    """One push phase then one drain phase on `servers`; returns jobs/s and server CPU µs/job of each."""
    out = {}
    per = [cfg.jobs // cfg.producers + (1 if i < cfg.jobs % cfg.producers else 0) for i in range(cfg.producers)]
    # Each producer pushes to every queue (so every node gets load from every producer).
    c0 = cpu_ticks(servers)
    secs, n = run_phase(producer, route, [queues] * cfg.producers,
                        lambda i, qs, st, o: (route, qs, per[i], st, o, i), cfg.producers)
    cpu = (cpu_ticks(servers) - c0) / HZ
    assert n == cfg.jobs, (n, cfg.jobs)
    out["push_jps"], out["push_cpu_us"] = n / secs, cpu * 1e6 / n
    sets = [queues[i::cfg.workers] for i in range(cfg.workers)]
    c0 = cpu_ticks(servers)
    secs, n = run_phase(worker, route, sets, lambda i, qs, st, o: (route, qs, st, o, i), cfg.workers)
    cpu = (cpu_ticks(servers) - c0) / HZ
    out["drain_jps"], out["drain_cpu_us"] = n / secs, cpu * 1e6 / max(n, 1)
    out["drained"] = n
    # Everything pushed was acked, nothing is left (totals from every owner).
    acked = 0
    for q in queues:
        c = Conn(route[q])
        c.send(enc("ONCE.STATS", q))
        st = c.read()
        m = {st[i].decode(): st[i + 1] for i in range(0, len(st), 2)}
        if m["ready"] or m["reserved"]:
            raise RuntimeError(f"{name}: {q} not drained: {m}")
        acked += m["acked_total"]
        c.send(enc("DEL", q))
        c.read()
        c.s.close()
    if acked != cfg.jobs or n != cfg.jobs:
        raise RuntimeError(f"{name}: acked {acked}, drained {n}, pushed {cfg.jobs}")
    log(f"{name}: push {out['push_jps']:,.0f} jobs/s ({out['push_cpu_us']:.1f} us CPU/job), "
        f"drain {out['drain_jps']:,.0f} jobs/s ({out['drain_cpu_us']:.1f} us CPU/job)")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--jobs", type=int)
    ap.add_argument("--reps", type=int)
    ap.add_argument("--producers", type=int, default=2)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--queues", type=int, default=30)
    ap.add_argument("--json", default=None)
    cfg = ap.parse_args(argv)
    cfg.jobs = cfg.jobs or (30_000 if cfg.quick else 300_000)
    cfg.reps = cfg.reps or (1 if cfg.quick else 3)
    if not os.path.exists(harness.MODULE):
        raise SystemExit(f"module not built: {harness.MODULE}")
    t0 = time.time()
    single = cluster = None
    try:
        single = harness.Server("redis", extra=["--save", "", "--appendonly", "no"])
        cluster = cluster_harness.Cluster("redis", masters=3, replicas=0, aof=False, extra=["--save", ""])
        ranges = cluster.master_ranges()
        queues = cluster_harness.keys_over_slots("bench:q", cfg.queues, ranges)
        route_c = {}
        for q in queues:
            owner = cluster.owner(q)
            assert owner is cluster.slot_owner(cluster_harness.key_slot(q))
            route_c[q] = owner.port
        route_s = {q: single.port for q in queues}
        per_node = {p: sum(1 for v in route_c.values() if v == p) for p in set(route_c.values())}
        log(f"{len(queues)} queues; cluster queues per master: {sorted(per_node.values())}; "
            f"{cfg.jobs:,} jobs, {cfg.producers} producers, {cfg.workers} workers, {cfg.reps} reps")
        runs = {"single": [], "cluster": []}
        for rep in range(cfg.reps):
            order = [("single", [single], route_s), ("cluster", cluster.nodes, route_c)]
            if rep % 2:
                order.reverse()
            for name, servers, route in order:
                runs[name].append(measure(f"{name} rep {rep + 1}", servers, route, queues, cfg))
        med = {name: {k: statistics.median(r[k] for r in rs) for k in ("push_jps", "push_cpu_us", "drain_jps",
                                                                       "drain_cpu_us")}
               for name, rs in runs.items()}
        result = {
            "jobs": cfg.jobs, "reps": cfg.reps, "queues": len(queues), "producers": cfg.producers,
            "workers": cfg.workers, "masters": 3, "queues_per_master": sorted(per_node.values()),
            "server": os.path.basename(harness.server_binary("redis")), "nproc": os.cpu_count(),
            "median": med, "runs": runs, "quick": cfg.quick, "secs": time.time() - t0,
            "ratio_drain": med["cluster"]["drain_jps"] / med["single"]["drain_jps"],
            "ratio_push": med["cluster"]["push_jps"] / med["single"]["push_jps"],
        }
    finally:
        if cluster:
            cluster.close()
        if single:
            single.close()
    if cfg.json:
        with open(cfg.json, "w") as f:
            json.dump(result, f)
    return result


if __name__ == "__main__":
    print(json.dumps(main()))
