#!/usr/bin/env python3
"""`make bench`, issue 21: a call's round trip through one worker, ONCE.CALL beside the ways it is done today.

One redis-server 7.0 with the module (bench.py's Server: `--save '' --appendonly no`, a free loopback port), one
worker process per pattern, one caller (this process, redis-py, RESP2) making calls one after another; the time of
a call is the caller's wall time from before its first command is sent until the worker's result is read back. Every
worker computes the same thing (`ok:` + the payload) and every reply is checked. The patterns:

  call        ONCE.CALL q payload TIMEOUT 5000; the worker loops ONCE.RESERVE q BLOCK 0 ACK id ATTEMPT n RESULT data
              (ack-and-fetch: one round trip per job for each side)
  result      ONCE.PUSH q payload KEEP 60000, then ONCE.RESULT q id BLOCK 5000 (two round trips; KEEP so that a
              job finished before the RESULT arrives is still there to read); the same worker loop
  stream-list Streams RPC: XADD jobs * payload p reply k, then BLPOP k 5; the worker's XREADGROUP BLOCK 0 COUNT 1
              and, in the same write, the previous job's LPUSH k result + EXPIRE k 60 + XACK
  stream-pipe the same with XADD and BLPOP sent in one write (one round trip, the best a Streams caller can do)
  stream-xread the same with the reply XADDed to a per-call reply stream, the caller in XREAD BLOCK 5000 on it
  poll        push, then poll a result key every 1 ms: LPUSH list "n|payload", then GETDEL result:n until it is set
              (sleep 1 ms between tries); the worker's BRPOP 0 and, in the same write, the previous SET ... EX 60
  bullmq      (bench/call_bullmq.mjs, when Node and clients/node's bullmq are there) queue.add then
              job.waitUntilFinished(queueEvents): BullMQ's own wait, its QueueEvents in XREAD BLOCK on the events
              stream; a BullMQ Worker (concurrency 1) in a process of its own
  ping        PING, the floor: one round trip of this client, nothing else

The calls run in interleaved blocks (the order rotating each round) after a warm-up per pattern, so noise on this
machine falls on every pattern alike; BullMQ runs after them (its own Node process and worker). Server CPU per call
is INFO cpu (user+sys) over the blocks, commands per call INFO commandstats. Prints a markdown section (bench/run
appends it to bench/results.md). Target (issue 21): ONCE.CALL p99 <= 1 ms. Nothing is asserted: the exit status
is non-zero only when the bench itself could not run.

    python3 bench/call_roundtrip.py [--calls 5000] [--warmup 500] [--rounds 50] [--quick] [--only call,poll,...]
"""
import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import time

import redis

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
import bench  # noqa: E402 - Server (its own redis-server, killed at exit), MODULE, machine facts, log

WORKERS = []  # worker processes started here, stopped at exit


def stop_workers():
    for p in WORKERS:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
    WORKERS.clear()


atexit.register(stop_workers)

# ---------------------------------------------------------------------------------------------------------------
# Workers: each a process of its own with one raw redis-py connection (RESP2, no socket timeout: redis-py 8's default
# of 5 s would cut a BLOCK 0 short); each sends its previous job's reply in the same write as its next wait.

PRELUDE = """
import sys, redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]), protocol=2, socket_timeout=None)
conn = r.connection_pool.get_connection()  # the raw connection: no pool or retry layer per command


def send(*commands):
    conn.send_packed_command(conn.pack_commands(commands))
    return [conn.read_response() for _ in commands]
"""

WORKER_ONCE = PRELUDE + """
q, ack = sys.argv[2], []
while True:
    jobs = send(["ONCE.RESERVE", q, "BLOCK", 0, *ack])[0]
    ack = []
    if jobs:
        jid, payload, attempt = jobs[0][0], jobs[0][1], jobs[0][2]
        ack = ["ACK", jid, "ATTEMPT", attempt, "RESULT", b"ok:" + payload]
"""

WORKER_STREAM = PRELUDE + """
stream, how = sys.argv[2], sys.argv[3]
try:
    send(["XGROUP", "CREATE", stream, "g", "0", "MKSTREAM"])
except redis.ResponseError:
    pass
done = []
while True:
    reply = send(*done, ["XREADGROUP", "GROUP", "g", "w", "COUNT", 1, "BLOCK", 0, "STREAMS", stream, ">"])[-1]
    msgid, fields = reply[0][1][0]
    f = dict(zip(fields[::2], fields[1::2]))
    result = b"ok:" + f[b"payload"]
    done = [["LPUSH", f[b"reply"], result] if how == "list" else ["XADD", f[b"reply"], "*", "result", result],
            ["EXPIRE", f[b"reply"], 60], ["XACK", stream, "g", msgid]]
"""

WORKER_POLL = PRELUDE + """
key, done = sys.argv[2], []
while True:
    _, item = send(*done, ["BRPOP", key, 0])[-1]
    n, payload = item.split(b"|", 1)
    done = [["SET", b"rpc:result:" + n, b"ok:" + payload, "EX", 60]]
"""


def start_worker(s, script, *args):
    p = subprocess.Popen([sys.executable, "-c", script, str(s.port), *map(str, args)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    WORKERS.append(p)
    return p


def wait_blocked(s, n, procs):
    deadline = time.time() + 30
    while sum("b" in c["flags"] for c in s.r.client_list()) < n:
        dead = [p for p in procs if p.poll() is not None]
        if dead or time.time() > deadline:
            err = dead[0].stderr.read().decode(errors="replace")[-600:] if dead else "timeout"
            raise RuntimeError(f"the workers did not start: {err}")
        time.sleep(0.02)


# ---------------------------------------------------------------------------------------------------------------
# Callers: one call each, returning the result bytes (checked by the loop). `n` makes every call's key unique.


def as_map(reply):
    if reply is None or isinstance(reply, dict):
        return reply
    return dict(zip(reply[::2], reply[1::2]))


def result_of(reply):
    m = as_map(reply)
    if m is None:
        return None
    return m.get(b"result", m.get("result"))


class Caller:
    """One raw redis-py connection (RESP2, no response callbacks, no pool or retry layer per command) and no socket
    timeout: redis-py 8 defaults to 5 s, which a blocking call may reach."""

    def __init__(self, port, poll_s=0.001):
        r = redis.Redis(host="127.0.0.1", port=port, protocol=2, socket_timeout=None)
        self.conn = r.connection_pool.get_connection()
        self.poll_s = poll_s
        self.polls = 0
        self.first_hits = 0  # poll: calls answered by the GETDEL right after the push

    def send(self, *commands):
        self.conn.send_packed_command(self.conn.pack_commands(commands))
        return [self.conn.read_response() for _ in commands]

    def one(self, *args):
        self.conn.send_command(*args)
        return self.conn.read_response()

    def call(self, n, payload):
        return result_of(self.one("ONCE.CALL", "rpc:call", payload, "TIMEOUT", 5000))

    def result(self, n, payload):
        jid = self.one("ONCE.PUSH", "rpc:result", payload, "KEEP", 60000)
        return result_of(self.one("ONCE.RESULT", "rpc:result", jid, "BLOCK", 5000))

    def stream_list(self, n, payload):
        key = b"rpc:reply:%d" % n
        self.one("XADD", "rpc:jobs", "MAXLEN", "~", 100000, "*", "payload", payload, "reply", key)
        got = self.one("BLPOP", key, 5)
        return got[1] if got else None

    def stream_pipe(self, n, payload):
        key = b"rpc:reply:%d" % n
        got = self.send(["XADD", "rpc:jobs", "MAXLEN", "~", 100000, "*", "payload", payload, "reply", key],
                        ["BLPOP", key, 5])[1]
        return got[1] if got else None

    def stream_xread(self, n, payload):
        key = b"rpc:xreply:%d" % n
        self.one("XADD", "rpc:xjobs", "MAXLEN", "~", 100000, "*", "payload", payload, "reply", key)
        got = self.one("XREAD", "BLOCK", 5000, "STREAMS", key, "0-0")
        if not got:
            return None
        fields = got[0][1][0][1]
        return dict(zip(fields[::2], fields[1::2]))[b"result"]

    def poll(self, n, payload):
        self.one("LPUSH", "rpc:list", b"%d|%s" % (n, payload))
        key = b"rpc:result:%d" % n
        deadline = time.perf_counter() + 5
        v = self.one("GETDEL", key)
        self.polls += 1
        if v is not None:
            self.first_hits += 1
            return v
        while v is None and time.perf_counter() < deadline:
            time.sleep(self.poll_s)
            v = self.one("GETDEL", key)
            self.polls += 1
        return v

    def ping(self, n, payload):
        self.one("PING")
        return b"ok:" + payload


PATTERNS = [
    # key, label, round trips of the caller, needs the module's CALL/RESULT
    ("call", "**ONCE.CALL** q p TIMEOUT 5000 ← worker RESERVE BLOCK … ACK id RESULT r", "1", True),
    ("result", "ONCE.PUSH q p KEEP 60000, then ONCE.RESULT q id BLOCK 5000 ← same worker", "2", True),
    ("stream-list", "Streams: XADD jobs, then BLPOP reply-key ← XREADGROUP BLOCK + LPUSH reply + XACK", "2", False),
    ("stream-pipe", "Streams as above, XADD and BLPOP sent in one write", "1", False),
    ("stream-xread", "Streams: XADD jobs, then XREAD BLOCK on a reply stream ← XREADGROUP BLOCK + XADD reply + XACK",
     "2", False),
    ("poll", "push, then poll: LPUSH jobs, GETDEL result-key every 1 ms ← BRPOP + SET result EX 60", "1 + polls",
     False),
    ("bullmq", "BullMQ 6: queue.add, then job.waitUntilFinished(queueEvents) ← BullMQ Worker, concurrency 1",
     "2 + the events XREAD", False),
    ("ping", "PING (the floor: one round trip, no work)", "1", False),
]


def percentiles(ns):
    xs = sorted(ns)
    n = len(xs)

    def pct(p):
        return xs[min(n - 1, max(0, int(round(p / 100 * n + 0.5)) - 1))] / 1000

    return {"n": n, "p50": pct(50), "p90": pct(90), "p99": pct(99), "p999": pct(99.9), "max": xs[-1] / 1000,
            "mean": sum(xs) / n / 1000}


def server_counters(r):
    info = r.execute_command("INFO", "cpu", "commandstats")
    cpu = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    calls = sum(int(v["calls"]) for k, v in info.items() if k.startswith("cmdstat_"))
    return cpu, calls


def probe(s):
    """Which of ONCE.CALL / ONCE.RESULT the module has: called with no arguments, a known command replies an arity
    error, a missing one `unknown command` (redis-py cannot parse COMMAND INFO's nil for a missing command)."""
    have = {}
    for name in ("once.call", "once.result"):
        try:
            s.r.execute_command(name)
            have[name] = True
        except redis.ResponseError as e:
            have[name] = "unknown command" not in str(e).lower()
    return have


def run_patterns(s, keys, cfg):
    """Interleaved blocks of calls for each pattern in `keys`; returns {key: figures}."""
    caller = Caller(s.port)
    r = s.r
    out = {k: {"ns": [], "cpu": 0.0, "calls": 0, "errors": 0, "bad": None, "polls": 0, "hits": 0} for k in keys}
    fn = {k: getattr(caller, k.replace("-", "_")) for k in keys}
    counter = [0]

    def block(k, count, record):
        f = fn[k]
        res = out[k]
        polls0, hits0 = caller.polls, caller.first_hits
        cpu0, calls0 = server_counters(r)
        ns = []
        for _ in range(count):
            counter[0] += 1
            n = counter[0]
            payload = b"%016d" % n
            t0 = time.perf_counter_ns()
            got = f(n, payload)
            t1 = time.perf_counter_ns()
            if got != b"ok:" + payload:
                res["errors"] += 1
                if res["bad"] is None:
                    res["bad"] = repr(got)[:200]
                if res["errors"] > 20 and res["errors"] > len(res["ns"]) // 10:
                    raise RuntimeError(f"{k}: {res['errors']} calls without the right result (first: {res['bad']})")
                continue
            ns.append(t1 - t0)
        cpu1, calls1 = server_counters(r)
        if record:
            res["ns"] += ns
            res["cpu"] += cpu1 - cpu0
            res["calls"] += calls1 - calls0 - 1  # the first INFO is counted, the second not yet
            res["polls"] += caller.polls - polls0
            res["hits"] += caller.first_hits - hits0

    for k in keys:
        bench.log(f"call_roundtrip: warm-up {k} ({cfg.warmup} calls)")
        block(k, cfg.warmup, False)
        out[k]["errors"] = 0
    per = max(1, cfg.calls // cfg.rounds)
    for rnd in range(cfg.rounds):
        order = keys[rnd % len(keys):] + keys[:rnd % len(keys)]
        for k in order:
            block(k, per, True)
        if (rnd + 1) % 10 == 0 or rnd + 1 == cfg.rounds:
            bench.log(f"call_roundtrip: round {rnd + 1}/{cfg.rounds} done")
    figs = {}
    for k in keys:
        res = out[k]
        if not res["ns"]:
            figs[k] = {"err": f"no successful call (first reply: {res['bad']})"}
            continue
        n = len(res["ns"])
        figs[k] = {**percentiles(res["ns"]), "server_cpu_us": res["cpu"] / n * 1e6, "cmds": res["calls"] / n,
                   "errors": res["errors"]}
        if k == "poll":
            figs[k]["polls"] = res["polls"] / n
            figs[k]["first_hit"] = res["hits"] / n
        bench.log(f"call_roundtrip {k}: p50 {figs[k]['p50']:.0f} µs, p99 {figs[k]['p99']:.0f} µs, "
                  f"max {figs[k]['max']:.0f} µs ({n} calls)")
    return figs


def run_bullmq(s, cfg):
    node = shutil.which("node")
    script = os.path.join(BENCH, "call_bullmq.mjs")
    if not node:
        return {"err": "node not on PATH"}
    if not os.path.isdir(os.path.join(ROOT, "clients", "node", "node_modules", "bullmq")):
        return {"err": "clients/node/node_modules/bullmq missing (cd clients/node && npm ci)"}
    bench.log(f"call_roundtrip: bullmq ({cfg.calls} calls after {cfg.warmup} warm-up)")
    cpu0, calls0 = server_counters(s.r)
    p = subprocess.run([node, script, "--port", str(s.port), "--calls", str(cfg.calls), "--warmup", str(cfg.warmup)],
                       capture_output=True, text=True, timeout=300)
    cpu1, calls1 = server_counters(s.r)
    if p.returncode != 0:
        return {"err": f"call_bullmq.mjs failed ({p.returncode}): {(p.stderr or p.stdout).strip()[-400:]}"}
    d = json.loads(p.stdout.strip().splitlines()[-1])
    n = d["n"]
    # The server counters span the warm-up and the set-up too: per call over every call made.
    d["server_cpu_us"] = (cpu1 - cpu0) / d["total_calls"] * 1e6
    d["cmds"] = (calls1 - calls0 - 1) / d["total_calls"]
    d["errors"] = d.get("errors", 0)
    bench.log(f"call_roundtrip bullmq: p50 {d['p50']:.0f} µs, p99 {d['p99']:.0f} µs, max {d['max']:.0f} µs ({n} calls)")
    return d


def fmt_us(x):
    return f"{x:,.0f}"


def report(cfg, m, figs, elapsed):
    L = []
    a = L.append
    a("")
    a("## Call round trip through one worker: ONCE.CALL beside push-then-wait (bench/call_roundtrip.py, same run)")
    a("")
    a(f"{m['date']}, {m['nproc']} CPUs ({m['cpu']}), {m['server']}, load at start {m['load']}"
      + (f"; busy at start: {m['busy']}" if m["busy"] else "") + f"; took {elapsed:.0f} s"
      + (" (**--quick sizes: not the real figures**)" if cfg.quick else "") + ".")
    a("")
    a(f"One server, one worker process per pattern, one caller making {cfg.calls:,} calls one after another per "
      f"pattern in {cfg.rounds} interleaved blocks of {max(1, cfg.calls // cfg.rounds)} (the order rotating), "
      f"after {cfg.warmup:,} warm-up calls each. "
      "Caller and workers are Python on a raw redis-py 8 connection (RESP2, pure-Python parser, no pool layer); "
      "each worker sends its previous reply in the same write as its next wait. 16-byte payloads; the worker returns "
      "`ok:` + payload and every reply is checked. Latency = the caller's wall time from sending until the result "
      "is read. Server CPU (INFO cpu, user+sys) and commands (INFO commandstats, which counts the commands a Lua "
      "script runs too) per call over the blocks; BullMQ's over its whole run, warm-up included. PING is the "
      "floor: one round trip of this client.")
    a("")
    a("| pattern | caller round trips | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | server CPU µs/call "
      "| commands/call | errors |")
    a("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for key, label, rtts, _ in PATTERNS:
        if key not in figs:
            continue
        f = figs[key]
        if "err" in f:
            a(f"| {label} | {rtts} | not measured: {f['err']} | | | | | | | |")
            continue
        if key == "poll":
            rtts = f"1 + {f['polls']:.2f} polls ({f['first_hit']:.0%} answered by the first)"
        a(f"| {label} | {rtts} | {fmt_us(f['p50'])} | {fmt_us(f['p90'])} | {fmt_us(f['p99'])} | "
          f"{fmt_us(f['p999'])} | {fmt_us(f['max'])} | {f['server_cpu_us']:.1f} | {f['cmds']:.2f} | {f['errors']} |")
    a("")
    a("The poll row's first GETDEL, right after the push, finds the result when the worker has already answered "
      "(the share in its round-trips column); the others wait ≥ 1 ms, so its median flips between the two from run "
      "to run, and p90/p99 show the 1 ms step. Tails (p99 and up) on a shared 2-core machine are mostly scheduling "
      "noise that falls on every row alike (compare PING's, and the busy processes above).")
    a("")
    c = figs.get("call", {})
    if "p99" in c:
        ok = c["p99"] <= 1000
        a(f"Target: ONCE.CALL round trip p99 ≤ 1 ms through one worker — measured p99 {c['p99'] / 1000:.3f} ms "
          f"(p50 {c['p50'] / 1000:.3f} ms): **{'PASS' if ok else 'MISS'}**.")
        rest = [k for k in ("stream-list", "stream-pipe", "poll", "bullmq") if "p50" in figs.get(k, {})]
        if rest:
            a("ONCE.CALL ÷ the others, p50 / p99 (below 1 = ONCE.CALL is faster): " + ", ".join(
                f"{k} {c['p50'] / figs[k]['p50']:.2f}× / {c['p99'] / figs[k]['p99']:.2f}×" for k in rest) + ".")
    else:
        a("Target: ONCE.CALL round trip p99 ≤ 1 ms — not measured: "
          + (c.get("err") or "the module has no ONCE.CALL yet") + ".")
    a("")
    return L


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--quick", action="store_true", help="1000 calls, 100 warm-up")
    ap.add_argument("--only", default="", help="comma list of: " + ",".join(k for k, *_ in PATTERNS))
    ap.add_argument("--json", help="also write the figures as JSON to this path")
    cfg = ap.parse_args()
    if cfg.quick:
        cfg.calls, cfg.warmup = 1000, 100
    only = [x for x in cfg.only.split(",") if x]
    unknown = set(only) - {k for k, *_ in PATTERNS}
    if unknown:
        sys.exit(f"unknown pattern(s): {', '.join(sorted(unknown))}")
    t0 = time.time()
    m = bench.machine()
    built = os.path.exists(bench.MODULE)
    if not built:
        bench.log(f"call_roundtrip: module not built ({bench.MODULE}): the Redis-only patterns run")
    s = bench.Server(module=built)
    figs = {}
    try:
        have = probe(s) if built else {"once.call": False, "once.result": False}
        bench.log("call_roundtrip: module has " + ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in have.items()))
        keys = []
        for key, _label, _rtts, needs_module in PATTERNS:
            if only and key not in only:
                continue
            if key == "bullmq":
                continue
            if needs_module and not (have["once.call"] if key == "call" else have["once.result"]):
                figs[key] = {"err": f"the module has no {'ONCE.CALL' if key == 'call' else 'ONCE.RESULT'} yet"
                             if built else f"module not built ({os.path.relpath(bench.MODULE, ROOT)} missing)"}
                continue
            keys.append(key)
        procs, blocked = [], 0
        if "call" in keys:
            procs.append(start_worker(s, WORKER_ONCE, "rpc:call"))
            blocked += 1
        if "result" in keys:
            procs.append(start_worker(s, WORKER_ONCE, "rpc:result"))
            blocked += 1
        if "stream-list" in keys or "stream-pipe" in keys:
            procs.append(start_worker(s, WORKER_STREAM, "rpc:jobs", "list"))
            blocked += 1
        if "stream-xread" in keys:
            procs.append(start_worker(s, WORKER_STREAM, "rpc:xjobs", "stream"))
            blocked += 1
        if "poll" in keys:
            procs.append(start_worker(s, WORKER_POLL, "rpc:list"))
            blocked += 1
        wait_blocked(s, blocked, procs)
        figs.update(run_patterns(s, keys, cfg))
        stop_workers()
        if not only or "bullmq" in only:
            try:
                figs["bullmq"] = run_bullmq(s, cfg)
            except Exception as e:  # noqa: BLE001 - report it in the table, go on
                figs["bullmq"] = {"err": str(e)[-300:]}
    finally:
        stop_workers()
        s.close()
    elapsed = time.time() - t0
    text = "\n".join(report(cfg, m, figs, elapsed))
    print(text)
    if cfg.json:
        with open(cfg.json, "w") as f:
            json.dump({"machine": m, "have": have, "figures": figs, "elapsed_s": elapsed}, f, indent=1)


if __name__ == "__main__":
    main()  # bench.py's SIGTERM/SIGINT/SIGHUP handlers exit through atexit, which stops the workers and servers
