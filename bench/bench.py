#!/usr/bin/env python3
"""`make bench`: Once vs plain Redis, measured side by side on this machine in one run.

Starts its own redis-server processes (`--save '' --appendonly no`, free loopback ports), drives them with
redis-benchmark and the Rust driver in bench/driver (built by bench/run), writes bench/results.md and prints
the same text. Targets are reported PASS/MISS, never asserted: the exit status is 0 unless the bench itself
broke. A section that cannot run (module not built, a command not implemented yet) is reported, not fatal.

Options: --quick (small sizes, for trying the script), --out PATH (default bench/results.md).
"""
import argparse
import atexit
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

import redis

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from helpers import encode_command  # noqa: E402 - the tests' RESP encoder (plain Python, no fixtures)
import pyworkers  # noqa: E402 - section pyworkers: Python workers vs the raw commands (bench/pyworkers.py)
import listfilter  # noqa: E402 - section listfilter: RPUSH/GET with the module loaded vs not (bench/listfilter.py)

DRIVER = os.path.join(BENCH, "driver", "target", "release", "once-bench")
MODULE = os.path.abspath(os.environ.get("ONCE_MODULE", os.path.join(ROOT, "target", "release", "libonce.so")))
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_BENCHMARK = shutil.which("redis-benchmark") or "/usr/bin/redis-benchmark"
PAYLOAD = "0123456789abcdef"  # 16 bytes

# ---------------------------------------------------------------------------------------------------------------
# Servers


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LIVE = []  # every server started, killed at exit whatever happens


class Server:
    def __init__(self, module=False, extra=()):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="once-bench-")
        self.log = os.path.join(self.dir, "server.log")
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
                "--save", "", "--appendonly", "no", "--logfile", self.log, "--daemonize", "no",
                "--enable-debug-command", "yes"]
        if module:
            argv += ["--loadmodule", MODULE]
        argv += list(extra)
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        LIVE.append(self)
        deadline = time.time() + 20
        while True:
            try:
                c = redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)
                c.ping()
                self.r = c
                return
            except redis.ConnectionError:
                if self.proc.poll() is not None:
                    self.close()
                    raise RuntimeError(f"redis-server exited at start: {self.log_tail()}")
                if time.time() > deadline:
                    self.close()
                    raise RuntimeError(f"redis-server did not answer: {self.log_tail()}")
                time.sleep(0.02)

    def log_tail(self, n=15):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:]).strip()
        except OSError:
            return ""

    def cpu_ticks(self):
        """user+system CPU of the server process, in clock ticks."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    def info(self, section):
        return self.r.info(section)

    def flush(self):
        self.r.execute_command("FLUSHALL", "SYNC")

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self in LIVE:
            LIVE.remove(self)
        shutil.rmtree(self.dir, ignore_errors=True)


def kill_all():
    for s in list(LIVE):
        s.close()


atexit.register(kill_all)


def on_signal(signum, _frame):
    kill_all()
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)
signal.signal(signal.SIGHUP, on_signal)

HZ = os.sysconf("SC_CLK_TCK")


def driver(*args, timeout=300):
    p = subprocess.run([DRIVER] + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"driver {' '.join(map(str, args))} failed ({p.returncode}): "
                           f"{(p.stderr or p.stdout).strip()[-600:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# What the module can do right now


def probe_module():
    """Which Once features work: {'loaded', 'push', 'reserve', 'block', 'ack', 'ack_fetch', 'stats', 'push_at',
    'info_once', 'list', 'purge'} -> bool, plus 'notes' (why something is missing)."""
    f = {k: False for k in ("loaded", "push", "reserve", "block", "ack", "ack_fetch", "stats", "push_at", "info_once",
                            "list", "purge")}
    f["notes"] = []
    if not os.path.exists(MODULE):
        f["notes"].append(f"module not built ({os.path.relpath(MODULE, ROOT)} missing)")
        return f
    try:
        s = Server(module=True)
    except RuntimeError as e:
        f["notes"].append(f"module does not load: {e}")
        return f
    f["loaded"] = True
    r = s.r

    def tr(name, fn):
        try:
            ok = fn()
            f[name] = bool(ok)
            if not ok:
                f["notes"].append(f"{name}: unexpected reply")
        except Exception as e:  # noqa: BLE001 - any failure means "missing"
            f["notes"].append(f"{name}: {e}")

    try:
        tr("push", lambda: isinstance(r.execute_command("ONCE.PUSH", "p", PAYLOAD), str))
        tr("stats", lambda: "ready" in stats(r, "p"))
        tr("reserve", lambda: r.execute_command("ONCE.RESERVE", "p") is not None)
        tr("block", lambda: r.execute_command("ONCE.RESERVE", "p", "BLOCK", "10") is None)

        def ack():
            r.execute_command("ONCE.PUSH", "p", PAYLOAD)
            j = r.execute_command("ONCE.RESERVE", "p")
            return r.execute_command("ONCE.ACK", "p", j[0][0]) == 1

        tr("ack", ack)

        def ack_fetch():
            r.execute_command("ONCE.PUSH", "p", PAYLOAD)
            j = r.execute_command("ONCE.RESERVE", "p")
            r.execute_command("ONCE.PUSH", "p", PAYLOAD)
            k = r.execute_command("ONCE.RESERVE", "p", "ACK", j[0][0])
            st = stats(r, "p")
            return k is not None and k[0][0] != j[0][0] and int(st["acked_total"]) >= 2 - (0 if f["ack"] else 1)

        tr("ack_fetch", ack_fetch)

        def push_at():
            r.execute_command("ONCE.PUSH", "pa", PAYLOAD, "AT", str(int(time.time() * 1000) + 200))
            st = stats(r, "pa")
            if int(st["delayed"]) != 1:
                return False
            deadline = time.time() + 3
            while time.time() < deadline:
                if int(stats(r, "pa")["ready"]) == 1:
                    return True
                time.sleep(0.02)
            f["notes"].append("push_at: a job due in 200 ms was not ready after 3 s (timer promotion missing?)")
            return False

        tr("push_at", push_at)
        tr("info_once", lambda: "once_timer_max_tick_us" in s.info("once"))
        tr("list", lambda: r.execute_command("ONCE.LIST", "p", "ready", "COUNT", 1)[0] is not None)
        tr("purge", lambda: isinstance(r.execute_command("ONCE.PURGE", "pa", "dead"), int))
    finally:
        s.close()
    return f


def stats(r, q):
    v = r.execute_command("ONCE.STATS", q)
    if isinstance(v, dict):
        return v
    return {v[i]: v[i + 1] for i in range(0, len(v), 2)}


def commandstat(s, name):
    """INFO commandstats of one command; module commands appear under the name they were registered with (any
    case)."""
    want = name.lower()
    return next((v for k, v in s.info("commandstats").items() if k.lower().replace("cmdstat_", "") == want), {})


def pipelined(port, commands, batch=10_000):
    """Sends `commands` (argument lists) on one raw connection, `batch` per write, and returns the replies (bulk
    strings as str, integers as int, errors as RuntimeError): a million pushes in seconds, where redis-py is slow."""
    replies = []
    with socket.create_connection(("127.0.0.1", port)) as sock:
        f = sock.makefile("rb")
        for i in range(0, len(commands), batch):
            chunk = commands[i:i + batch]
            sock.sendall(b"".join(map(encode_command, chunk)))
            for _ in chunk:
                line = f.readline()[:-2]
                kind, rest = line[:1], line[1:]
                if kind == b"$":
                    replies.append(None if int(rest) < 0 else f.read(int(rest) + 2)[:-2].decode())
                elif kind == b":":
                    replies.append(int(rest))
                elif kind == b"-":
                    replies.append(RuntimeError(rest.decode(errors="replace")))
                else:
                    replies.append(rest.decode(errors="replace"))
    return replies


def first_error(replies, want=str):
    return next((x for x in replies if not isinstance(x, want)), None)


# ---------------------------------------------------------------------------------------------------------------
# 1. push throughput


def bench_push(cfg, feats):
    cmds = [("ONCE.PUSH", ["ONCE.PUSH", "bq", PAYLOAD], "cmdstat_once.push")] if feats["push"] else []
    cmds += [("RPUSH", ["RPUSH", "bl", PAYLOAD], "cmdstat_rpush"),
             ("XADD", ["XADD", "bs", "*", "d", PAYLOAD], "cmdstat_xadd")]
    s = Server(module=feats["loaded"])
    res = {name: {"rps": [], "usec": []} for name, _, _ in cmds}
    ratios = []
    try:
        # One discarded warm-up run (first connections, allocator growth).
        subprocess.run([REDIS_BENCHMARK, "-h", "127.0.0.1", "-p", str(s.port), "-c", "50", "-P", "16",
                        "-n", str(cfg.push_n // 4), "--csv", "RPUSH", "warm", PAYLOAD],
                       capture_output=True, text=True, timeout=120)
        for rep in range(cfg.push_reps):
            order = cmds[rep % len(cmds):] + cmds[:rep % len(cmds)]
            this = {}
            for name, argv, stat in order:
                s.flush()
                s.r.config_resetstat()
                p = subprocess.run([REDIS_BENCHMARK, "-h", "127.0.0.1", "-p", str(s.port), "-c", "50", "-P", "16",
                                    "-n", str(cfg.push_n), "--csv"] + argv,
                                   capture_output=True, text=True, timeout=300)
                rows = [l for l in p.stdout.splitlines() if l.startswith('"') and not l.startswith('"test"')]
                if p.returncode != 0 or not rows:
                    raise RuntimeError(f"redis-benchmark {name} failed: {(p.stderr or p.stdout).strip()[-300:]}")
                rps = float(rows[-1].split('","')[1].strip('"'))
                cs = commandstat(s, stat.replace("cmdstat_", ""))
                calls = int(cs.get("calls", 0))
                if calls < cfg.push_n:
                    raise RuntimeError(f"{name}: commandstats shows {calls} calls, expected {cfg.push_n}")
                res[name]["rps"].append(rps)
                res[name]["usec"].append(float(cs["usec_per_call"]))
                this[name] = rps
                log(f"push {name} rep {rep + 1}: {rps:,.0f} ops/s, {cs['usec_per_call']} us/call")
            if "ONCE.PUSH" in this:
                ratios.append(this["ONCE.PUSH"] / this["RPUSH"])
    finally:
        s.close()
    out = {name: {"rps": statistics.median(v["rps"]), "usec": statistics.median(v["usec"]),
                  "rps_all": v["rps"], "usec_all": v["usec"]} for name, v in res.items()}
    return {"cmds": out, "round_ratios": ratios}


# ---------------------------------------------------------------------------------------------------------------
# 2. full cycle


def bench_cycle(cfg, feats):
    systems = []
    notes = []
    if feats["push"] and feats["reserve"] and feats["stats"]:
        block = ["--once-block", "1" if feats["block"] else "0"]
        if not feats["block"]:
            notes.append("ONCE.RESERVE BLOCK missing: Once workers poll (200 µs sleep when empty)")
        if feats["ack_fetch"]:
            systems.append(("once", "Once (RESERVE … ACK id: ack-and-fetch, 1 round trip/job)", block))
        else:
            notes.append("ONCE.RESERVE … ACK (ack-and-fetch) missing: Once measured with a separate ONCE.ACK only")
        if feats["ack"]:
            systems.append(("once-2rtt", "Once, separate ONCE.ACK then RESERVE (2 round trips/job)", block))
        else:
            notes.append("ONCE.ACK missing")
    else:
        notes.append("Once not measured: " + ", ".join(k for k in ("push", "reserve", "stats") if not feats[k])
                     + " missing")
    systems += [
        ("streams-2rtt", "Streams: XREADGROUP BLOCK, then XACK (2 round trips/job)", []),
        ("streams", "Streams, XACK pipelined with the next XREADGROUP (1 round trip/job)", []),
        ("lua-2rtt", "Lua queue: reserve script, then ack script (2 round trips/job)", []),
        ("lua", "Lua queue, ack script pipelined with the next reserve (1 round trip/job)", []),
    ]
    s = Server(module=feats["loaded"])
    res = {k: {"label": label, "jps": [], "cpu_us": [], "err": None} for k, label, _ in systems}
    try:
        for rep in range(cfg.cycle_reps):
            order = systems[rep % len(systems):] + systems[:rep % len(systems)]
            for key, label, extra in order:
                if res[key]["err"]:
                    continue
                s.flush()
                c0 = s.cpu_ticks()
                try:
                    out = driver("cycle", "--port", s.port, "--system", key, "--producers", cfg.producers,
                                 "--workers", cfg.workers, "--jobs", cfg.cycle_jobs, "--batch", 64, *extra)
                except Exception as e:  # noqa: BLE001
                    res[key]["err"] = str(e)
                    log(f"cycle {key}: {e}")
                    continue
                cpu = (s.cpu_ticks() - c0) / HZ
                if int(out["acked"]) != cfg.cycle_jobs:
                    res[key]["err"] = f"acked {out['acked']} of {cfg.cycle_jobs}"
                res[key]["jps"].append(out["jobs_per_sec"])
                res[key]["cpu_us"].append(cpu * 1e6 / cfg.cycle_jobs)
                log(f"cycle {key} rep {rep + 1}: {out['jobs_per_sec']:,.0f} jobs/s, "
                    f"server CPU {cpu * 1e6 / cfg.cycle_jobs:.1f} us/job")
    finally:
        s.close()
    for v in res.values():
        v["median"] = statistics.median(v["jps"]) if v["jps"] else None
        v["cpu_median"] = statistics.median(v["cpu_us"]) if v["cpu_us"] else None
    return {"systems": res, "order": [k for k, _, _ in systems], "notes": notes}


# ---------------------------------------------------------------------------------------------------------------
# 3. memory per job


MEM_VARIANTS = (  # Once jobs pushed with an option: (key, label, the options of job i)
    ("once-id", "Once, custom id (`ID job-<12 digits>`, 16 bytes)", lambda i: ["ID", f"job-{i:012d}"]),
    ("once-delay", "Once, delayed (`DELAY 3600000`)", lambda i: ["DELAY", 3600000]),
    ("once-group", "Once, in a group (`GROUP g<i % 100>`)", lambda i: ["GROUP", f"g{i % 100}"]),
)


def push_variant(s, n, options, chunk=100_000):
    """n ONCE.PUSH of distinct 16-byte payloads with options(i), 1,000 per write (the driver pushes bare jobs only).
    The argument lists are built a chunk at a time: a million of them at once would hold ~0.5 GB in this process."""
    t0 = time.perf_counter()
    for lo in range(0, n, chunk):
        got = pipelined(s.port, [["ONCE.PUSH", "mq", f"{i:016x}", *options(i)] for i in range(lo, min(n, lo + chunk))],
                        batch=1000)
        if first_error(got) is not None:
            raise RuntimeError(f"ONCE.PUSH failed: {first_error(got)}")
    st = stats(s.r, "mq")
    if int(st["ready"]) + int(st["delayed"]) != n:
        raise RuntimeError(f"{st['ready']} ready + {st['delayed']} delayed jobs, expected {n:,}")
    return time.perf_counter() - t0


def bench_memory(cfg, feats):
    once = [("once", "Once (ONCE.PUSH)", None), *MEM_VARIANTS] if feats["push"] else []
    kinds = once + [("list", "list (RPUSH)", None), ("stream", "stream (XADD, one field)", None)]
    out = {}
    for key, label, options in kinds:
        s = Server(module=feats["loaded"])
        try:
            time.sleep(0.2)
            before = int(s.info("memory")["used_memory"])
            if options:
                secs = push_variant(s, cfg.mem_jobs, options)
            else:
                secs = driver("load", "--port", s.port, "--system", key, "--jobs", cfg.mem_jobs,
                              "--batch", 1000, "--conns", 2)["secs"]
            time.sleep(0.2)
            after = int(s.info("memory")["used_memory"])
            per = (after - before) / cfg.mem_jobs
            out[key] = {"label": label, "bytes_per_job": per, "over_payload": per - 16, "load_secs": secs}
            log(f"memory {key}: {per:.1f} bytes/job")
        finally:
            s.close()
    return out


# ---------------------------------------------------------------------------------------------------------------
# 4. 1M delayed jobs due at once


def bench_delayed(cfg, feats):
    s = Server(module=True)
    try:
        info0 = s.info("once") if feats["info_once"] else {}
        d = driver("delayed", "--port", s.port, "--jobs", cfg.delayed_jobs, "--lead-ms", cfg.lead_ms,
                   "--batch", 1000, timeout=180)
        info1 = s.info("once") if feats["info_once"] else {}
    finally:
        s.close()
    d["info_before"] = info0
    d["info_after"] = info1
    log(f"delayed: all ready {d['all_ready_ms']} ms after due; ping p99.9 {d['ping_promotion']['p999_us']} us, "
        f"max {d['ping_promotion']['max_us']} us; timer max tick {info1.get('once_timer_max_tick_us')} us")
    return d


# ---------------------------------------------------------------------------------------------------------------
# 5. wake-up latency


def bench_wakeup(cfg, feats):
    kinds = ([("once", "Once: ONCE.RESERVE q BLOCK 0 (ACK id) ← ONCE.PUSH")] if feats["block"] else []) + \
        [("list", "list: BLPOP ← RPUSH"), ("stream", "stream: XREADGROUP BLOCK 0 ← XADD")]
    s = Server(module=feats["loaded"])
    out = {}
    try:
        for key, label in kinds:
            try:
                d = driver("wakeup", "--port", s.port, "--system", key, "--samples", cfg.wake_samples,
                           "--warmup", 100, "--gap-us", 1000, timeout=120)
            except Exception as e:  # noqa: BLE001
                out[key] = {"label": label, "err": str(e)}
                continue
            d["label"] = label
            out[key] = d
            log(f"wakeup {key}: p50 {d['p50_us']} us, p99 {d['p99_us']} us")
    finally:
        s.close()
    return out


# ---------------------------------------------------------------------------------------------------------------
# Report


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:  # noqa: BLE001
        return "?"


# ---------------------------------------------------------------------------------------------------------------
# 6. a cluster of 3 masters vs one node (bench/cluster_bench.py; it starts and kills its own servers)


def bench_cluster(cfg, feats):
    # In this process, so that its finally (which kills its servers by PID) runs on errors and on SIGTERM too.
    os.environ["ONCE_MODULE"] = MODULE
    sys.path.insert(0, BENCH)
    import cluster_bench

    return cluster_bench.main(["--quick"] if cfg.quick else [])


# ---------------------------------------------------------------------------------------------------------------
# 7. CANCEL from the head vs the middle of a long ready line


def bench_cancel(cfg, feats):
    n, k = cfg.cancel_jobs, cfg.cancel_ids
    s = Server(module=True)
    rounds = []
    try:
        for rep in range(cfg.cancel_reps):
            s.flush()
            t0 = time.perf_counter()
            ids = pipelined(s.port, [["ONCE.PUSH", "cq", PAYLOAD]] * n)
            load_s = time.perf_counter() - t0
            if first_error(ids) is not None:
                raise RuntimeError(f"ONCE.PUSH failed: {first_error(ids)}")
            where = {"head": ids[:k], "middle": ids[(n - k) // 2:(n + k) // 2]}
            this = {"load_s": load_s}
            # Both on the same line (n, then n - k jobs); which goes first alternates by round.
            for name in ("head", "middle") if rep % 2 == 0 else ("middle", "head"):
                s.r.config_resetstat()
                t1 = time.perf_counter()
                removed = s.r.execute_command("ONCE.CANCEL", "cq", *where[name])
                wall_ms = (time.perf_counter() - t1) * 1000
                if removed != k:
                    raise RuntimeError(f"CANCEL of {k:,} ids from the {name} removed {removed}")
                this[name] = {"server_us": float(commandstat(s, "once.cancel")["usec"]), "wall_ms": wall_ms}
            this["ratio"] = this["middle"]["server_us"] / max(this["head"]["server_us"], 1.0)
            rounds.append(this)
            log(f"cancel round {rep + 1}: head {this['head']['server_us'] / 1000:.2f} ms, middle "
                f"{this['middle']['server_us'] / 1000:.2f} ms (server), ratio {this['ratio']:.2f}")
    finally:
        s.close()
    med = {w: {f: statistics.median(r[w][f] for r in rounds) for f in ("server_us", "wall_ms")}
           for w in ("head", "middle")}
    return {"jobs": n, "ids": k, "rounds": rounds, "median": med,
            "ratio": statistics.median(r["ratio"] for r in rounds)}


# ---------------------------------------------------------------------------------------------------------------
# 8. The longest timer tick: many schedules @every 10ms while a million delayed jobs fall due


def bench_cron_tick(cfg, feats):
    """One fresh server per spread of the schedules over keys (all on one key is the hard case: a queue holds up
    to 10,000)."""
    return {"runs": [cron_tick_run(cfg, nkeys) for nkeys in cfg.tick_keys]}


def cron_tick_run(cfg, nkeys):
    n, count = cfg.tick_jobs, cfg.tick_schedules
    keys = [f"cron:{i}" for i in range(nkeys)]
    s = Server(module=True)
    try:
        # How long a million pushes take here, so the jobs fall due only after the schedules are in place.
        t0 = time.perf_counter()
        pipelined(s.port, [["ONCE.PUSH", "cal", PAYLOAD]] * 20_000)
        per_push = (time.perf_counter() - t0) / 20_000
        s.r.delete("cal")
        lead_ms = max(cfg.lead_ms, int(2 * per_push * n * 1000) + 1500)
        due = int(time.time() * 1000) + lead_ms
        got = pipelined(s.port, [["ONCE.PUSH", "due", PAYLOAD, "AT", due]] * n)
        if first_error(got) is not None:
            raise RuntimeError(f"ONCE.PUSH … AT failed: {first_error(got)}")
        t1 = time.perf_counter()
        made = pipelined(s.port, [["ONCE.SCHEDULE", keys[i % len(keys)], f"s{i}", "@every 10ms", PAYLOAD]
                                  for i in range(count)], batch=1000)
        sched_s = time.perf_counter() - t1
        accepted = sum(isinstance(x, int) for x in made)
        before_due_ms = due - int(time.time() * 1000)
        time.sleep(max(0, before_due_ms - 100) / 1000)
        info_before = s.info("once")
        deadline = time.time() + 60
        while int(stats(s.r, "due")["ready"]) < n and time.time() < deadline:
            time.sleep(0.005)
        all_ready_ms = int(time.time() * 1000) - due
        time.sleep(cfg.tick_after_s)       # cron alone again, after the promotion
        info_after = s.info("once")
        fired = sum(int(stats(s.r, k)["pushed_total"]) for k in keys)
        ready = int(stats(s.r, "due")["ready"])
    finally:
        s.close()
    out = {"jobs": n, "schedules": count, "keys": len(keys), "accepted": accepted, "refused": first_error(made, int),
           "lead_ms": lead_ms, "schedule_secs": sched_s, "before_due_ms": before_due_ms, "all_ready_ms": all_ready_ms,
           "ready": ready, "fired": fired, "info_before": info_before, "info_after": info_after}
    log(f"crontick: {accepted:,} schedules on {nkeys} key(s), {ready:,} of {n:,} ready {all_ready_ms} ms after due, "
        f"{fired:,} fired; "
        f"timer max tick {info_before.get('once_timer_max_tick_us')} us before due, "
        f"{info_after.get('once_timer_max_tick_us')} us at the end")
    return out


# ---------------------------------------------------------------------------------------------------------------
# 9. ONCE.LIST COUNT 100 at the tail of a 1M-job state vs at its head

# Server-side helpers (Lua), so that a million jobs are walked or failed without a million round trips.
LUA_MAKE_DEAD = """
local got = redis.call('ONCE.RESERVE', KEYS[1], 'COUNT', ARGV[1], 'LEASE', 600000)
if not got then return 0 end
for _, j in ipairs(got) do redis.call('ONCE.NACK', KEYS[1], j[1], 'ATTEMPT', j[3], 'DEAD') end
return #got
"""
LUA_WALK = """
local c = ARGV[2]
for i = 1, tonumber(ARGV[3]) do
  local r = redis.call('ONCE.LIST', KEYS[1], ARGV[1], 'CURSOR', c, 'COUNT', 1000)
  c = r[1]
  if c == '0' then return c end
end
return c
"""


def push_many(s, key, n, *opts):
    got = pipelined(s.port, [["ONCE.PUSH", key, PAYLOAD, *opts]] * n)
    if first_error(got) is not None:
        raise RuntimeError(f"ONCE.PUSH failed: {first_error(got)}")


def make_dead(s, key, n):
    """n jobs pushed with RETRIES 0, reserved and NACKed DEAD inside the server, 10,000 per EVAL."""
    push_many(s, key, n, "RETRIES", 0)
    done = 0
    while done < n:
        got = int(s.r.eval(LUA_MAKE_DEAD, 1, key, min(10_000, n - done)))
        if got == 0:
            raise RuntimeError(f"only {done:,} of {n:,} jobs became dead")
        done += got
    dead = int(stats(s.r, key)["dead"])
    if dead != n:
        raise RuntimeError(f"{dead:,} dead jobs, expected {n:,}")


def walk_to(s, key, state, pages):
    """The cursor after `pages` pages of COUNT 1000 (walked inside the server, 100 pages per EVAL)."""
    cursor = "0"
    while pages > 0:
        step = min(100, pages)
        cursor = s.r.eval(LUA_WALK, 1, key, state, cursor, step)
        pages -= step
        if cursor == "0":
            raise RuntimeError(f"the {state} walk ended before the tail")
    return cursor


def time_list(s, key, state, cursor, calls):
    """`calls` ONCE.LIST ... CURSOR c COUNT 100 at one place: server µs/call (INFO commandstats) and wall µs/call."""
    s.r.config_resetstat()
    t = time.perf_counter()
    for _ in range(calls):
        reply = s.r.execute_command("ONCE.LIST", key, state, "CURSOR", cursor, "COUNT", 100)
    wall_us = (time.perf_counter() - t) * 1e6 / calls
    if len(reply[1]) != 100:
        raise RuntimeError(f"ONCE.LIST {state} at cursor {cursor} returned {len(reply[1])} jobs, not 100")
    cs = commandstat(s, "once.list")
    return {"server_us": float(cs["usec_per_call"]), "wall_us": wall_us}


def bench_list_tail(cfg, feats):
    n = cfg.list_jobs
    s = Server(module=True)
    out = {"jobs": n, "calls": cfg.list_calls, "states": {}}
    try:
        for state in ("ready", "dead"):
            s.flush()
            t0 = time.perf_counter()
            if state == "ready":
                push_many(s, "lq", n)
            else:
                make_dead(s, "lq", n)
            load_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            tail = walk_to(s, "lq", state, n // 1000 - 1)     # ~1000 jobs before the end
            walk_s = time.perf_counter() - t1
            rounds = []
            for rep in range(cfg.list_reps):
                this = {}
                for where in (("head", "tail") if rep % 2 == 0 else ("tail", "head")):
                    this[where] = time_list(s, "lq", state, "0" if where == "head" else tail, cfg.list_calls)
                this["ratio"] = this["tail"]["server_us"] / max(this["head"]["server_us"], 0.001)
                rounds.append(this)
            med = {w: {f: statistics.median(r_[w][f] for r_ in rounds) for f in ("server_us", "wall_us")}
                   for w in ("head", "tail")}
            out["states"][state] = {"load_s": load_s, "walk_s": walk_s, "tail_cursor": tail, "rounds": rounds,
                                    "median": med, "ratio": statistics.median(r_["ratio"] for r_ in rounds)}
            log(f"listtail {state}: head {med['head']['server_us']:.1f} us, tail {med['tail']['server_us']:.1f} us "
                f"per call (server); walk to the tail {walk_s:.1f} s")
    finally:
        s.close()
    return out


# ---------------------------------------------------------------------------------------------------------------
# 10. PURGE of 1M dead jobs: the call itself, then the timer freeing them, while another client pings


class Pinger:
    """A thread pinging back to back on its own raw connection, recording (start, rtt) of every PING."""

    def __init__(self, port):
        import threading
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.samples = []
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        ping = b"*1\r\n$4\r\nPING\r\n"
        while not self.stop:
            t = time.perf_counter()
            self.sock.sendall(ping)
            got = b""
            while not got.endswith(b"\r\n"):
                got += self.sock.recv(64)
            self.samples.append((t, time.perf_counter() - t))

    def close(self):
        self.stop = True
        self.thread.join(10)
        self.sock.close()

    def between(self, t0, t1):
        return [rtt for t, rtt in self.samples if t0 <= t <= t1]


def rtt_summary(rtts):
    if not rtts:
        return {"n": 0, "p50_us": None, "p99_us": None, "p999_us": None, "max_us": None}
    v = sorted(rtts)
    at = lambda q: v[min(len(v) - 1, int(q * len(v)))] * 1e6  # noqa: E731
    return {"n": len(v), "p50_us": at(0.5), "p99_us": at(0.99), "p999_us": at(0.999), "max_us": v[-1] * 1e6}


def bench_purge(cfg, feats):
    n = cfg.purge_jobs
    s = Server(module=True, extra=["--latency-monitor-threshold", "1"])
    pinger = None
    try:
        t0 = time.perf_counter()
        make_dead(s, "pq", n)
        load_s = time.perf_counter() - t0
        full = int(s.r.memory_usage("pq") or 0)
        info0 = s.info("once")
        pinger = Pinger(s.port)
        time.sleep(1.0)                                   # idle baseline
        s.r.execute_command("LATENCY", "RESET")
        s.r.config_resetstat()
        t_purge = time.perf_counter()
        purged = s.r.execute_command("ONCE.PURGE", "pq", "dead")
        purge_wall_ms = (time.perf_counter() - t_purge) * 1000
        if purged != n:
            raise RuntimeError(f"PURGE removed {purged:,}, expected {n:,}")
        purge_us = float(commandstat(s, "once.purge")["usec"])
        deadline = time.time() + 120
        freed_ms = None
        while time.time() < deadline:
            used = int(s.r.memory_usage("pq") or 0)
            if used < full / 10:
                freed_ms = (time.perf_counter() - t_purge) * 1000
                break
            time.sleep(0.01)
        time.sleep(0.2)
        t_end = time.perf_counter()
        info1 = s.info("once")
        lat = s.r.execute_command("LATENCY", "LATEST") or []
        pinger.close()
        idle = rtt_summary(pinger.between(t_purge - 1.0, t_purge))
        during = rtt_summary(pinger.between(t_purge, t_end))
        worst = max(((t, rtt) for t, rtt in pinger.samples if t_purge <= t <= t_end), key=lambda x: x[1],
                    default=(t_purge, 0))
        pinger = None
    finally:
        if pinger:
            pinger.close()
        s.close()
    latency = {str(e[0]): int(e[3]) for e in lat}                # event -> max ms since LATENCY RESET
    out = {"jobs": n, "load_s": load_s, "memory_before": full, "purge_us": purge_us, "purge_wall_ms": purge_wall_ms,
           "freed_ms": freed_ms, "ping_idle": idle, "ping_purge": during,
           "worst_ping_at_ms": (worst[0] - t_purge) * 1000, "info_before": info0, "info_after": info1,
           "latency_latest_ms": latency}
    log(f"purge: PURGE of {n:,} dead took {purge_us / 1000:.2f} ms (server), freed after {freed_ms} ms; "
        f"ping max {during['max_us']} us (idle max {idle['max_us']} us); timer max tick "
        f"{info0.get('once_timer_max_tick_us')} -> {info1.get('once_timer_max_tick_us')} us; LATENCY {latency}")
    return out


# ---------------------------------------------------------------------------------------------------------------
# 11. PUSH throughput with keyspace notifications off vs on


def notifications_delivered(s, flags):
    """True when a PUSH with `notify-keyspace-events flags` publishes once.push on the key's keyspace channel."""
    s.r.config_set("notify-keyspace-events", flags)
    sub = s.r.pubsub()
    try:
        sub.subscribe("__keyspace@0__:probe")
        sub.get_message(timeout=2)
        s.r.execute_command("ONCE.PUSH", "probe", PAYLOAD)
        m = sub.get_message(timeout=2)
        return bool(m) and m.get("data") in ("once.push", b"once.push")
    finally:
        sub.close()
        s.r.delete("probe")


def bench_notify(cfg, feats):
    on_flags = "KEA"
    s = Server(module=True)
    modes = [("off", ""), ("on", on_flags)]
    res = {m: {"rps": [], "usec": []} for m, _ in modes}
    ratios = []
    try:
        delivered = notifications_delivered(s, on_flags)
        silent = not notifications_delivered(s, "")
        for rep in range(cfg.notify_reps):
            this = {}
            for mode, flags in (modes if rep % 2 == 0 else modes[::-1]):
                s.flush()
                s.r.config_set("notify-keyspace-events", flags)
                s.r.config_resetstat()
                p = subprocess.run([REDIS_BENCHMARK, "-h", "127.0.0.1", "-p", str(s.port), "-c", "50", "-P", "16",
                                    "-n", str(cfg.notify_n), "--csv", "ONCE.PUSH", "nq", PAYLOAD],
                                   capture_output=True, text=True, timeout=300)
                rows = [l for l in p.stdout.splitlines() if l.startswith('"') and not l.startswith('"test"')]
                if p.returncode != 0 or not rows:
                    raise RuntimeError(f"redis-benchmark ({mode}) failed: {(p.stderr or p.stdout).strip()[-300:]}")
                rps = float(rows[-1].split('","')[1].strip('"'))
                cs = commandstat(s, "once.push")
                if int(cs.get("calls", 0)) < cfg.notify_n:
                    raise RuntimeError(f"{mode}: commandstats shows {cs.get('calls')} calls, expected {cfg.notify_n}")
                res[mode]["rps"].append(rps)
                res[mode]["usec"].append(float(cs["usec_per_call"]))
                this[mode] = rps
                log(f"notify {mode} rep {rep + 1}: {rps:,.0f} ops/s, {cs['usec_per_call']} us/call")
            ratios.append(this["on"] / this["off"])
    finally:
        s.close()
    return {"flags": on_flags, "delivered": delivered, "silent_when_off": silent, "n": cfg.notify_n,
            "modes": {m: {"rps": statistics.median(v["rps"]), "usec": statistics.median(v["usec"]),
                          "rps_all": v["rps"]} for m, v in res.items()},
            "round_ratios": ratios, "ratio": statistics.median(ratios)}


# ---------------------------------------------------------------------------------------------------------------
# 13. ONCE.BULK of 100 payloads per call vs a pipeline of 100 ONCE.PUSH vs a pipeline of 100 XADD


def read_reply(f):
    """One RESP2 reply from a buffered socket file (arrays included); errors come back as RuntimeError."""
    line = f.readline()[:-2]
    kind, rest = line[:1], line[1:]
    if kind == b"*":
        return None if int(rest) < 0 else [read_reply(f) for _ in range(int(rest))]
    if kind == b"$":
        return None if int(rest) < 0 else f.read(int(rest) + 2)[:-2]
    if kind == b"-":
        return RuntimeError(rest.decode(errors="replace"))
    return int(rest) if kind == b":" else rest


BULK_WAYS = [
    ("ONCE.BULK", "one ONCE.BULK of 100 payloads", lambda: [["ONCE.BULK", "bk", "PAYLOADS"] + [PAYLOAD] * 100]),
    ("ONCE.PUSH", "a pipeline of 100 ONCE.PUSH", lambda: [["ONCE.PUSH", "bp", PAYLOAD]] * 100),
    ("XADD", "a pipeline of 100 XADD", lambda: [["XADD", "bx", "*", "d", PAYLOAD]] * 100),
]


def bulk_way(s, name, commands, jobs):
    """`jobs` jobs as rounds of 100 (one write, then its replies) on one connection, the bytes of a round encoded
    once: jobs/s from the client's clock, server µs/job from INFO commandstats."""
    s.flush()
    s.r.config_resetstat()
    data = b"".join(encode_command(c) for c in commands)
    rounds, t0 = jobs // 100, time.perf_counter()
    with socket.create_connection(("127.0.0.1", s.port)) as sock:
        f = sock.makefile("rb")
        for _ in range(rounds):
            sock.sendall(data)
            for _ in commands:
                reply = read_reply(f)
                if isinstance(reply, RuntimeError):
                    raise reply
    wall = time.perf_counter() - t0
    cs = commandstat(s, name)
    return {"jobs_per_s": rounds * 100 / wall, "server_us_per_job": float(cs["usec"]) / (rounds * 100)}


def bench_bulk(cfg, feats):
    s = Server(module=True)
    res = {name: [] for name, _, _ in BULK_WAYS}
    try:
        bulk_way(s, "ONCE.BULK", BULK_WAYS[0][2](), cfg.bulk_jobs // 10)    # warm-up, discarded
        for rep in range(cfg.bulk_reps):
            order = BULK_WAYS[rep % 3:] + BULK_WAYS[:rep % 3]
            for name, _, make in order:
                v = bulk_way(s, name, make(), cfg.bulk_jobs)
                res[name].append(v)
                log(f"bulk {name} rep {rep + 1}: {v['jobs_per_s']:,.0f} jobs/s, {v['server_us_per_job']:.3f} us/job")
    finally:
        s.close()
    med = {name: {f: statistics.median(x[f] for x in runs) for f in ("jobs_per_s", "server_us_per_job")}
           for name, runs in res.items()}
    return {"jobs": cfg.bulk_jobs, "runs": res, "median": med}


# ---------------------------------------------------------------------------------------------------------------
# 14. ONCE.LIST ... MATCH over 1M ready jobs: every call's server time (SLOWLOG), the longest above all


def match_walk(s, count):
    """A MATCH walk for the one payload that matches, COUNT `count`: (calls, µs of every call from SLOWLOG, found)."""
    s.r.config_set("slowlog-log-slower-than", 0)
    s.r.config_set("slowlog-max-len", 100_000)
    s.r.slowlog_reset()
    cursor, calls, found = "0", 0, []
    while True:
        cursor, page = s.r.execute_command("ONCE.LIST", "mq", "ready", "CURSOR", cursor, "COUNT", count,
                                           "MATCH", "needle-*")
        calls += 1
        found += page
        if cursor == "0":
            break
    entries = [e for e in s.r.slowlog_get(100_000) if str(e["command"]).lower().lstrip("b'\"").startswith("once.list")]
    s.r.config_set("slowlog-log-slower-than", 10_000)
    return calls, [e["duration"] for e in entries], len(found)


def bench_match(cfg, feats):
    n = cfg.match_jobs
    s = Server(module=True)
    try:
        for start in range(0, n, 10_000):
            payloads = [f"job-{i:07d}" if i != n * 7 // 9 else "needle-1" for i in range(start, min(n, start + 10_000))]
            reply = s.r.execute_command("ONCE.BULK", "mq", "PAYLOADS", *payloads)
            if len(reply) != len(payloads):
                raise RuntimeError(f"ONCE.BULK returned {len(reply)} ids for {len(payloads)} payloads")
        out = {"jobs": n, "walks": {}}
        for count in (1000, 100):
            calls, durations, found = match_walk(s, count)
            if found != 1 or len(durations) != calls:
                raise RuntimeError(f"COUNT {count}: found {found}, {len(durations)} SLOWLOG entries for {calls} calls")
            out["walks"][count] = {"calls": calls, "longest_us": max(durations), "total_us": sum(durations),
                                   "median_us": statistics.median(durations)}
            log(f"match COUNT {count}: {calls} calls, longest {max(durations)} us, total {sum(durations) / 1000:.1f} ms")
        s.r.config_resetstat()
        for _ in range(20):
            s.r.execute_command("ONCE.LIST", "mq", "ready", "COUNT", 1000)
        out["plain_list_us"] = float(commandstat(s, "once.list")["usec_per_call"])
    finally:
        s.close()
    return out


# ---------------------------------------------------------------------------------------------------------------
# 12. Flow control: the RESERVE+ACK cycle with no limits, CONCURRENCY, RATE and 100k groups; 100k drained groups


FLOW_MODES = (
    ("none", "no limits", []),
    ("concurrency", "CONCURRENCY 1000", ["CONCURRENCY", 1000]),
    # RATE n is at most 100,000: RATE 1000000 PER 1000 is refused, so the same 1M/s as RATE 100000 PER 100
    ("rate", "RATE 100000 PER 100", ["RATE", 100000, "PER", 100]),
    ("groups", "jobs spread over 100,000 groups", []),
)


def flow_cycle(s, mode, settings, n, groups, batch=500):
    """n jobs pushed (pipelined), then reserved and acked in batches of `batch` (a pipeline of RESERVEs, then one
    of ACKs): server µs per call of ONCE.RESERVE and ONCE.ACK (INFO commandstats), wall time of the cycle."""
    s.flush()
    if settings:
        s.r.execute_command("ONCE.CONFIGURE", "fq", *settings)
    opts = (lambda i: ["GROUP", f"g{i % groups}"]) if mode == "groups" else (lambda i: [])
    got = pipelined(s.port, [["ONCE.PUSH", "fq", PAYLOAD, *opts(i)] for i in range(n)])
    if first_error(got) is not None:
        raise RuntimeError(f"ONCE.PUSH failed: {first_error(got)}")
    s.r.config_resetstat()
    done, t0 = 0, time.perf_counter()
    while done < n:
        p = s.r.pipeline(transaction=False)
        for _ in range(min(batch, n - done)):
            p.execute_command("ONCE.RESERVE", "fq")
        ids = [g[0][0] for g in p.execute() if g]
        if not ids:
            raise RuntimeError(f"{mode}: RESERVE returned nothing after {done:,} of {n:,} jobs")
        p = s.r.pipeline(transaction=False)
        for j in ids:
            p.execute_command("ONCE.ACK", "fq", j)
        if sum(p.execute()) != len(ids):
            raise RuntimeError(f"{mode}: an ACK failed")
        done += len(ids)
    wall_s = time.perf_counter() - t0
    st = stats(s.r, "fq")
    if int(st["ready"]) or int(st["reserved"]) or int(st["acked_total"]) != n:
        raise RuntimeError(f"{mode}: the queue is not drained: {st}")
    rs, ak = commandstat(s, "once.reserve"), commandstat(s, "once.ack")
    return {"reserve_us": float(rs["usec_per_call"]), "reserve_calls": int(rs["calls"]),
            "ack_us": float(ak["usec_per_call"]), "cycles_per_s": n / wall_s, "groups_after": int(st["groups"])}


def used_memory(s):
    time.sleep(0.2)
    return int(s.info("memory")["used_memory"])


def drain(s, key, n):
    done = 0
    while done < n:
        p = s.r.pipeline(transaction=False)
        for _ in range(min(1000, n - done)):
            p.execute_command("ONCE.RESERVE", key, "COUNT", 1)
        ids = [g[0][0] for g in p.execute() if g]
        if not ids:
            raise RuntimeError(f"drain: nothing to reserve after {done:,} of {n:,}")
        p = s.r.pipeline(transaction=False)
        for j in ids:
            p.execute_command("ONCE.ACK", key, j)
        p.execute()
        done += len(ids)


def flow_memory(s, groups, group_rate):
    """used_memory before pushing, after 1 job to each of `groups` groups, after draining them; with a GROUP-RATE
    also after the windows end and one more reservation."""
    s.flush()
    s.r.execute_command("ONCE.PUSH", "mq", PAYLOAD)        # the queue exists before: only the groups are counted
    drain(s, "mq", 1)
    if group_rate:
        s.r.execute_command("ONCE.CONFIGURE", "mq", "GROUP-RATE", 1, "PER", group_rate)
    out = {"before": used_memory(s)}
    got = pipelined(s.port, [["ONCE.PUSH", "mq", PAYLOAD, "GROUP", f"tenant-{i}"] for i in range(groups)])
    if first_error(got) is not None:
        raise RuntimeError(f"ONCE.PUSH failed: {first_error(got)}")
    out["pushed"], out["groups_pushed"] = used_memory(s), int(stats(s.r, "mq")["groups"])
    drain(s, "mq", groups)
    out["drained"], out["groups_drained"] = used_memory(s), int(stats(s.r, "mq")["groups"])
    if group_rate:
        time.sleep(group_rate / 1000 + 0.3)   # the last group's window (it was reserved last) has ended
        s.r.execute_command("ONCE.PUSH", "mq", PAYLOAD)
        drain(s, "mq", 1)
        out["after_windows"], out["groups_after_windows"] = used_memory(s), int(stats(s.r, "mq")["groups"])
    return out


def bench_flow(cfg, feats):
    n, groups = cfg.flow_jobs, cfg.flow_groups
    s = Server(module=True)
    out = {"jobs": n, "groups": groups, "rounds": [], "memory": {}}
    try:
        for rep in range(cfg.flow_reps):
            order = FLOW_MODES if rep % 2 == 0 else FLOW_MODES[::-1]
            this = {}
            for mode, _, settings in order:
                this[mode] = flow_cycle(s, mode, settings, n, groups)
                log(f"flow {mode} round {rep + 1}: RESERVE {this[mode]['reserve_us']:.2f} us/call, ACK "
                    f"{this[mode]['ack_us']:.2f} us/call (server), {this[mode]['cycles_per_s']:,.0f} cycles/s")
            out["rounds"].append(this)
        out["median"] = {m: {f: statistics.median(r_[m][f] for r_ in out["rounds"])
                             for f in ("reserve_us", "ack_us", "cycles_per_s")} for m, _, _ in FLOW_MODES}
        for label, rate in (("no group settings", None), ("GROUP-RATE 1 PER 1000", 1000)):
            out["memory"][label] = flow_memory(s, groups, rate)
            log(f"flow memory ({label}): {out['memory'][label]}")
    finally:
        s.close()
    return out


# ---------------------------------------------------------------------------------------------------------------
# 15. Persistence of one big queue vs a stream of as many entries: BGSAVE, AOF rewrite, DEBUG RELOAD, restart

SAVE_KINDS = (("once", "Once queue (ONCE.PUSH)"), ("stream", "stream (XADD, one field)"))


def proc_kb(pid, field, name="status"):
    """A `field: N kB` line of /proc/<pid>/<name>, or None when the process is gone (or a zombie, which has none)."""
    try:
        with open(f"/proc/{pid}/{name}") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def fork_child(pid):
    """The server's child process (the save or rewrite child: a server forks one at a time), or None."""
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            kids = f.read().split()
        if kids:
            return int(kids[0])
    return None


def persistence(s):
    return s.info("persistence")


def watch_child(s, start, done, timeout=600):
    """Runs start() (a command that forks a child), then reads the child's /proc every ~5 ms until it exits: its
    lifetime and the largest VmHWM and Private_Dirty (smaps_rollup: its pages no longer shared with the server)
    seen. Then waits for done(INFO persistence), which the server notices in its cron (up to 100 ms later)."""
    rss = proc_kb(s.proc.pid, "VmRSS")
    t0 = time.perf_counter()
    start()
    child = fork_child(s.proc.pid)   # still listed as a zombie until the server's cron reaps it
    if child is None:
        raise RuntimeError(f"no child process after the command: {persistence(s)}")
    hwm = priv = samples = 0
    while True:
        h = proc_kb(child, "VmHWM")
        p = proc_kb(child, "Private_Dirty", "smaps_rollup")
        if h is None or p is None:
            break
        hwm, priv, samples = max(hwm, h), max(priv, p), samples + 1
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError(f"the child {child} still runs after {timeout} s")
        time.sleep(0.005)
    child_s = time.perf_counter() - t0
    while not done(persistence(s)):
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError(f"not done after {timeout} s: {persistence(s)}")
        time.sleep(0.005)
    return {"child_s": child_s, "done_s": time.perf_counter() - t0, "samples": samples, "child_hwm_kb": hwm,
            "child_private_kb": priv, "server_rss_kb": rss, "fork_us": int(s.info("stats")["latest_fork_usec"])}


def bgsave(s):
    got = watch_child(s, lambda: s.r.bgsave(), lambda ip: int(ip["rdb_bgsave_in_progress"]) == 0)
    ip = persistence(s)
    if ip["rdb_last_bgsave_status"] != "ok":
        raise RuntimeError(f"BGSAVE failed: {s.log_tail()}")
    got["cow_kb"] = int(ip["rdb_last_cow_size"]) // 1024   # the child's own Private_Dirty figure, for comparison
    got["file_bytes"] = os.path.getsize(os.path.join(s.dir, "dump.rdb"))
    return got


def aof_rewrite(s):
    """`CONFIG SET appendonly yes` writes the whole data set as commands in a child (aof-use-rdb-preamble no, set at
    start), like BGREWRITEAOF; appendonly goes back off after it."""
    got = watch_child(s, lambda: s.r.config_set("appendonly", "yes"),
                      lambda ip: int(ip["aof_rewrite_in_progress"]) == 0 and int(ip["aof_rewrite_scheduled"]) == 0)
    ip = persistence(s)
    if ip["aof_last_bgrewrite_status"] != "ok":
        raise RuntimeError(f"AOF rewrite failed: {s.log_tail()}")
    got["cow_kb"] = int(ip["aof_last_cow_size"]) // 1024
    got["file_bytes"] = int(ip["aof_base_size"])
    s.r.config_set("appendonly", "no")
    return got


def reset_peak_rss(pid):
    """Writing 5 to clear_refs resets VmHWM to the current RSS (Linux ≥ 4.0); False where that is refused."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def debug_reload(s):
    """DEBUG RELOAD (save, empty, load, all in the server's thread): its wall time and the server's peak RSS over
    its RSS before."""
    pid = s.proc.pid
    reset = reset_peak_rss(pid)
    rss, hwm_before = proc_kb(pid, "VmRSS"), proc_kb(pid, "VmHWM")
    t0 = time.perf_counter()
    s.r.execute_command("DEBUG", "RELOAD")
    wall = time.perf_counter() - t0
    hwm = proc_kb(pid, "VmHWM")
    return {"wall_s": wall, "rss_before_kb": rss, "hwm_before_kb": hwm_before, "hwm_after_kb": hwm,
            "peak_growth_kb": hwm - rss, "hwm_reset": reset}


def held(s, kind):
    """Jobs or entries the key holds."""
    if kind == "once":
        st = stats(s.r, "mq")
        return int(st["ready"]) + int(st["delayed"])
    return int(s.r.xlen("ms"))


def check_held(s, kind, n, when):
    got = held(s, kind)
    if got != n:
        raise RuntimeError(f"{kind}: {got:,} held {when}, expected {n:,}")


def restart(rdb_dir, module, kind, n, base):
    """A new server started on the saved RDB: the time until PING answers and INFO persistence shows loading:0,
    the server's own `DB loaded from disk` figure, its peak RSS over its RSS once loaded (what loading needed
    beyond the data), and used_memory of the loaded data."""
    t0 = time.perf_counter()
    s = Server(module=module, extra=["--dir", rdb_dir])   # the last --dir wins; the log stays in the server's own
    try:
        while int(persistence(s)["loading"]) != 0:
            time.sleep(0.005)
        wall = time.perf_counter() - t0
        check_held(s, kind, n, "after the restart")
        with open(s.log, errors="replace") as f:
            logged = [l for l in f if "DB loaded from disk:" in l]
        server_s = float(logged[-1].split("DB loaded from disk:")[1].split()[0]) if logged else None
        peak_kb = proc_kb(s.proc.pid, "VmHWM") - proc_kb(s.proc.pid, "VmRSS")
        return {"wall_s": wall, "server_s": server_s, "peak_over_rss_kb": peak_kb, "used_memory": used_memory(s) - base}
    finally:
        s.close()


def save_kind(cfg, kind, module):
    s = Server(module=module, extra=["--aof-use-rdb-preamble", "no"])
    rdb_dir = tempfile.mkdtemp(prefix="once-bench-rdb-")
    try:
        base = used_memory(s)
        driver("load", "--port", s.port, "--system", kind, "--jobs", cfg.save_jobs, "--batch", 1000, "--conns", 2)
        out = {"used_memory": used_memory(s) - base}
        check_held(s, kind, cfg.save_jobs, "after the pushes")
        out["bgsave"] = bgsave(s)
        os.replace(os.path.join(s.dir, "dump.rdb"), os.path.join(rdb_dir, "dump.rdb"))
        log(f"save {kind}: BGSAVE {out['bgsave']}")
        out["aof"] = aof_rewrite(s)
        log(f"save {kind}: AOF rewrite {out['aof']}")
        out["reload"] = debug_reload(s)
        check_held(s, kind, cfg.save_jobs, "after DEBUG RELOAD")
        log(f"save {kind}: DEBUG RELOAD {out['reload']}")
        s.close()
        out["load"] = restart(rdb_dir, module, kind, cfg.save_jobs, base)
        log(f"save {kind}: restart {out['load']}")
        return out
    finally:
        s.close()
        shutil.rmtree(rdb_dir, ignore_errors=True)


def bench_save(cfg, feats):
    return {"jobs": cfg.save_jobs,
            "kinds": {kind: dict(save_kind(cfg, kind, feats["loaded"]), label=label) for kind, label in SAVE_KINDS}}


# ---------------------------------------------------------------------------------------------------------------
# 16. Batches of 10 (issue 20): RESERVE COUNT 10 + one ACK of 10 vs XREADGROUP COUNT 10 + one XACK of 10, per job

BATCH = 10
BATCH_WAYS = (  # (key, label, the two commandstats names summed)
    ("once", "Once: `ONCE.RESERVE q COUNT 10`, then `ONCE.ACK q id1 … id10` (2 round trips per 10 jobs)",
     ("once.reserve", "once.ack")),
    ("stream", "Streams: `XREADGROUP GROUP g c COUNT 10 STREAMS s >`, then `XACK s g id1 … id10` (2 round trips "
     "per 10 jobs)", ("xreadgroup", "xack")),
    # RESERVE's `ACK id` takes one id only; the form that acknowledges several is `ACKS n id attempt …` (fenced)
    ("once-acks", "Once, ack-and-fetch: `ONCE.RESERVE q COUNT 10 ACKS 10 id attempt …` acking the previous 10 "
     "(fenced; 1 round trip per 10 jobs)", ("once.reserve", "once.ack")),
)


def batch_fill(s, way, n):
    if way == "stream":
        got = pipelined(s.port, [["XADD", "s", "*", "p", PAYLOAD]] * n)
        s.r.execute_command("XGROUP", "CREATE", "s", "g", "0")
    else:
        got = pipelined(s.port, [["ONCE.PUSH", "q", PAYLOAD]] * n)
    if first_error(got) is not None or len(got) != n:
        raise RuntimeError(f"{way}: filling failed: {first_error(got)}")


def batch_drain(s, way, n):
    """Drains the n jobs with one raw connection, step by step (the next command only once the reply is in): jobs
    drained and the wall time of the drain."""
    with socket.create_connection(("127.0.0.1", s.port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = sock.makefile("rb")

        def call(*args):
            sock.sendall(encode_command(args))
            reply = read_reply(f)
            if isinstance(reply, RuntimeError):
                raise RuntimeError(f"{args[0]}: {reply}")
            return reply

        done, prev, t0 = 0, [], time.perf_counter()
        while True:
            if way == "stream":
                got = call("XREADGROUP", "GROUP", "g", "c", "COUNT", BATCH, "STREAMS", "s", ">")
                ids = [e[0] for e in got[0][1]] if got else []
                if ids and call("XACK", "s", "g", *ids) != len(ids):
                    raise RuntimeError("XACK acknowledged fewer entries than it was given")
            elif way == "once":
                got = call("ONCE.RESERVE", "q", "COUNT", BATCH)
                ids = [j[0] for j in got] if got else []
                if ids and call("ONCE.ACK", "q", *ids) != len(ids):
                    raise RuntimeError("ONCE.ACK acknowledged fewer jobs than it was given")
            else:
                acks = ["ACKS", len(prev), *[x for j in prev for x in (j[0], j[2])]] if prev else []
                got = call("ONCE.RESERVE", "q", "COUNT", BATCH, *acks)
                prev = list(got or [])
                ids = prev
            if not ids:
                break
            done += len(ids)
        return done, time.perf_counter() - t0


def batch_check(s, way, n):
    """Nothing skipped: the queue holds no ready or reserved job and counts n acked; the group has no pending entry
    and read all n."""
    if way == "stream":
        pending = s.r.xpending("s", "g")["pending"]
        grp = s.r.xinfo_groups("s")[0]
        ok = pending == 0 and int(grp["entries-read"] or 0) == n and not grp.get("lag")
        return ok, f"XPENDING {pending}, entries-read {grp['entries-read']}, lag {grp.get('lag')}"
    st = stats(s.r, "q")
    ok = int(st["ready"]) == 0 and int(st["reserved"]) == 0 and int(st["acked_total"]) == n
    return ok, f"ready {st['ready']}, reserved {st['reserved']}, acked_total {st['acked_total']}"


def batch_way(cfg, feats, way, names):
    s = Server(module=feats["loaded"])
    try:
        batch_fill(s, way, cfg.batch_jobs)
        s.r.config_resetstat()
        c0 = s.cpu_ticks()
        done, wall = batch_drain(s, way, cfg.batch_jobs)
        cpu = (s.cpu_ticks() - c0) / HZ
        cs = {name: commandstat(s, name) for name in names}
        ok, check = batch_check(s, way, cfg.batch_jobs)
        if done != cfg.batch_jobs or not ok:
            raise RuntimeError(f"{way}: drained {done:,} of {cfg.batch_jobs:,}; {check}")
    finally:
        s.close()
    usec = sum(float(v.get("usec", 0)) for v in cs.values())
    return {"server_us_job": usec / done, "wall_us_job": wall * 1e6 / done, "cpu_us_job": cpu * 1e6 / done,
            "calls": {k: int(v.get("calls", 0)) for k, v in cs.items()},
            "usec_per_call": {k: float(v.get("usec_per_call", 0)) for k, v in cs.items()}, "check": check}


def bench_batch(cfg, feats):
    ways = [w for w in BATCH_WAYS if w[0] == "stream" or feats["ack"]]
    out = {"jobs": cfg.batch_jobs, "rounds": [], "notes": []}
    if not feats["ack"]:
        out["notes"].append("ONCE.ACK missing: Once not measured")
    for rep in range(cfg.batch_reps):
        order = ways if rep % 2 == 0 else ways[::-1]
        this = {}
        for key, _, names in order:
            try:
                this[key] = batch_way(cfg, feats, key, names)
            except RuntimeError as e:
                if key != "once-acks":
                    raise
                out["notes"].append(f"the ack-and-fetch row failed: {e}")   # RESERVE without ACKS: the rest stands
                ways = [w for w in ways if w[0] != "once-acks"]
                continue
            v = this[key]
            log(f"batch {key} round {rep + 1}: server {v['server_us_job']:.3f} us/job (commandstats), wall "
                f"{v['wall_us_job']:.2f} us/job, server CPU {v['cpu_us_job']:.2f} us/job; {v['check']}")
        out["rounds"].append(this)
    out["median"] = {key: {f: statistics.median(r_[key][f] for r_ in out["rounds"] if key in r_)
                           for f in ("server_us_job", "wall_us_job", "cpu_us_job")}
                     for key, _, _ in ways}
    # Paired: each round runs both on fresh servers back to back, so the per-round ratio cancels the machine's drift
    # (the test suite sharing these 2 cores slows whole rounds; commandstats `usec` is wall time inside the command).
    out["round_ratios"] = [r_["once"]["server_us_job"] / r_["stream"]["server_us_job"] for r_ in out["rounds"]
                           if "once" in r_ and "stream" in r_]
    out["ratio"] = statistics.median(out["round_ratios"]) if out["round_ratios"] else None
    return out


def batch_target(bt):
    name = "RESERVE COUNT 10 + ACK of 10 ≤ XREADGROUP COUNT 10 + XACK of 10 (server µs per job)"
    if not isinstance(bt, dict) or "once" not in bt.get("median", {}):
        return (name, "not measured", "—")
    o, st = bt["median"]["once"], bt["median"]["stream"]
    extra = ""
    if "once-acks" in bt["median"]:
        extra = f"; ack-and-fetch RESERVE … ACKS 10: {bt['median']['once-acks']['server_us_job']:.3f} µs"
    return (name + f" — {bt['jobs']:,} jobs, one client; median of per-round ratios",
            f"{bt['ratio']:.2f}× ({o['server_us_job']:.3f} vs {st['server_us_job']:.3f} µs/job, medians; wall "
            f"{o['wall_us_job']:.1f} vs {st['wall_us_job']:.1f} µs/job{extra})", verdict(bt["ratio"] <= 1))


def batch_report(bt, cfg):
    L = [f"## 16. Batches of 10: RESERVE COUNT 10 + one ACK of 10 vs XREADGROUP COUNT 10 + one XACK of 10 — "
         f"{cfg.batch_jobs:,} jobs, one client", ""]
    if not isinstance(bt, dict):
        return L + [f"Failed / not run: {bt}", ""]
    L += [f"A fresh server per way and round: {bt['jobs']:,} 16-byte jobs pushed pipelined (`ONCE.PUSH q p`, or "
          "`XADD s * p <payload>` then `XGROUP CREATE s g 0`), CONFIG RESETSTAT, then one client on a raw "
          "connection drains them, each command sent once the previous reply is in. Server µs/job = INFO "
          "commandstats `usec` of the two commands summed ÷ jobs (the final empty read included); wall = the drain's "
          "time ÷ jobs (a Python client: mostly round trips and parsing); server CPU = redis-server user+sys "
          "(/proc, 10 ms ticks) ÷ jobs. At the end the queue shows ready 0, reserved 0 and every job acked, and "
          "the group XPENDING 0 with every entry read. RESERVE's `ACK id` takes one id, so the ack-and-fetch row "
          "uses its `ACKS n id attempt …` form (each ack fenced by its attempt); its last RESERVE acks the last "
          f"batch and finds nothing. {len(bt['rounds'])} round(s), the order alternating; medians.", "",
          "| way | server µs/job (commandstats) | ÷ Streams | wall µs/job | server CPU µs/job | µs/call of each "
          "(last round) | server µs/job, every round |", "| --- | ---: | ---: | ---: | ---: | --- | --- |"]
    base = bt["median"].get("stream", {}).get("server_us_job")
    for key, label, names in BATCH_WAYS:
        if key not in bt["median"]:
            continue
        v = bt["median"][key]
        last = next(r_[key] for r_ in reversed(bt["rounds"]) if key in r_)
        each = ", ".join(f"{n} {last['usec_per_call'][n]:.2f} ({last['calls'][n]:,} calls)" for n in names
                         if last["calls"].get(n))
        rel = f"{v['server_us_job'] / base:.2f}×" if base else "—"
        every = ", ".join(f"{r_[key]['server_us_job']:.3f}" for r_ in bt["rounds"] if key in r_)
        L.append(f"| {label} | {v['server_us_job']:.3f} | {rel} | {v['wall_us_job']:.2f} | {v['cpu_us_job']:.2f} | "
                 f"{each} | {every} |")
    if bt["round_ratios"]:
        L += ["", "RESERVE + ACK ÷ XREADGROUP + XACK, server µs/job per round: "
              f"{', '.join(f'{x:.2f}' for x in bt['round_ratios'])} (median {bt['ratio']:.2f}; the target uses this "
              "paired figure: the test suite sharing the machine slows whole rounds, and commandstats `usec` is wall "
              "time inside the command, so it counts preemption)."]
    for n in bt["notes"]:
        L.append(f"- {n}")
    return L + [""]


# ---------------------------------------------------------------------------------------------------------------
# flows: a 1,000-job fan-in end to end, Once's addFlow beside BullMQ's FlowProducer (bench/flows_bullmq.mjs starts
# its own server with MODULE and prints one JSON line)


def bench_flows(cfg, feats):
    node = os.path.join(ROOT, "clients", "node")
    if not os.path.isdir(os.path.join(node, "node_modules")):
        subprocess.run(["npm", "ci", "--ignore-scripts", "--omit=optional", "--no-audit", "--no-fund"], cwd=node,
                       check=True, capture_output=True)
    subprocess.run(["npm", "run", "--silent", "build"], cwd=node, check=True, capture_output=True)
    argv = ["node", os.path.join(BENCH, "flows_bullmq.mjs"), "--json", "--children", "1000",
            "--rounds", "1" if cfg.quick else "5"]
    # a session of its own, so that a timeout also kills the server the script started
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         env={**os.environ, "ONCE_MODULE": MODULE})
    try:
        out, err = p.communicate(timeout=900)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    if p.returncode != 0:
        raise RuntimeError(f"bench/flows_bullmq.mjs exited {p.returncode}: {err.strip()[-800:]}")
    return json.loads(out.strip().splitlines()[-1])


def bench_release(cfg, feats):
    """One ACK of a job that 10,000 waiting jobs depend on, beside the ACK of a job nobody waits on: the ACK's
    own server time, the longest timer tick and the worst PING while the 10,000 are released, and how long until
    the last one is ready."""
    n = 10_000
    out = {"waiting": n}
    for label, fan in (("plain", 0), ("fan-out", n)):
        s = Server(module=True, extra=["--latency-monitor-threshold", "1"])
        pinger = None
        try:
            dep = s.r.execute_command("ONCE.PUSH", "{f}:a", "a")
            if fan:
                pipelined(s.port, [["ONCE.PUSH", "{f}:b", f"w{i}", "AFTER", "{f}:a", "1", dep] for i in range(fan)])
            assert int(stats(s.r, "{f}:b").get("waiting", 0)) == fan
            s.r.execute_command("ONCE.RESERVE", "{f}:a")
            info0 = s.info("once")
            pinger = Pinger(s.port)
            time.sleep(0.5)
            s.r.config_resetstat()
            t0 = time.perf_counter()
            s.r.execute_command("ONCE.ACK", "{f}:a", dep)
            ack_wall_ms = (time.perf_counter() - t0) * 1000
            ready_ms = None
            deadline = time.time() + 60
            while time.time() < deadline:
                st = stats(s.r, "{f}:b")
                if int(st.get("ready", 0)) == fan and int(st.get("waiting", 0)) == 0:
                    ready_ms = (time.perf_counter() - t0) * 1000
                    break
                time.sleep(0.001)
            time.sleep(0.2)
            t1 = time.perf_counter()
            info1 = s.info("once")
            pinger.close()
            during = rtt_summary(pinger.between(t0, t1))
            pinger = None
            out[label] = {"ack_us": float(commandstat(s, "once.ack")["usec"]), "ack_wall_ms": ack_wall_ms,
                          "all_ready_ms": ready_ms, "ping": during,
                          "max_tick_us": int(info1.get("once_timer_max_tick_us", 0)),
                          "max_tick_before_us": int(info0.get("once_timer_max_tick_us", 0))}
            log(f"release ({label}): ACK {out[label]['ack_us']:.0f} us server, all {fan:,} ready after {ready_ms} ms, "
                f"ping max {during['max_us']} us, timer max tick {out[label]['max_tick_us']} us")
        finally:
            if pinger:
                pinger.close()
            s.close()
    return out


def release_report(rl):
    L = ["## An ACK that releases 10,000 waiting jobs (section release)", ""]
    if not isinstance(rl, dict):
        return L + [f"Not measured: {rl}", ""]
    L += [f"{rl['waiting']:,} jobs pushed with `AFTER {{f}}:a 1 <id>` wait on one job; it is reserved, then acknowledged "
          "while a second connection PINGs back to back. The ACK releases 256 itself and the timer the rest, 256 "
          "per step within its 1 ms budget. Beside it, the ACK of a job nobody waits on.", "",
          "| ACK of | ACK server µs | ACK round trip ms | all ready after ms | longest timer tick µs | worst PING µs |",
          "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for label in ("plain", "fan-out"):
        m = rl.get(label)
        if not isinstance(m, dict):
            continue
        ready = "—" if label == "plain" else (f"{m['all_ready_ms']:.1f}" if m["all_ready_ms"] is not None else "never")
        L.append(f"| {'a job nobody waits on' if label == 'plain' else 'a job 10,000 wait on'} | {m['ack_us']:.0f} | "
                 f"{m['ack_wall_ms']:.2f} | {ready} | {m['max_tick_us']:,} | {m['ping']['max_us']:,.0f} |")
    return L + [""]


def flows_report(fr):
    L = ["## A 1,000-job fan-in: Once addFlow vs BullMQ FlowProducer (section flows)", ""]
    if not isinstance(fr, dict):
        return L + [f"Not measured: {fr}", ""]
    L += [f"bench/flows_bullmq.mjs on {fr['server']}: {fr['children']:,} children and one parent that waits for "
          "them, pushed in one call (Once: `queue.addFlow`, one MULTI; BullMQ: `FlowProducer.add`), run by one "
          f"worker per side in the same Node process (concurrency {fr['concurrency']}, node {fr['node']}, bullmq "
          f"{fr['bullmq']}); each child returns 2i, the parent reads its children's results (`job.deps()` / "
          "`job.getChildrenValues()`) and the sum is checked. Total: from the push until the parent's handler has "
          f"the sum. Median of {fr['rounds']} rounds, the sides alternating which goes first.", "",
          "| side | push ms | total ms | jobs/s | server CPU ms | commands | total ms, every round |",
          "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for name, label in (("once", "Once addFlow"), ("bullmq", "BullMQ FlowProducer")):
        m = fr["median"][name]
        L.append(f"| {label} | {m['pushMs']:.1f} | {m['totalMs']:.1f} | {m['jobsPerSec']:,.0f} | "
                 f"{m['serverCpuMs']:.1f} | {m['commands']:,.0f} | "
                 f"{', '.join(format(r['totalMs'], '.0f') for r in fr['runs'][name])} |")
    return L + [""]


def machine():
    model = "?"
    for line in sh("lscpu").splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    return {
        "nproc": sh("nproc"),
        "cpu": model,
        "kernel": platform.release(),
        "server": sh(f"{REDIS_SERVER} --version"),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "load": sh("cut -d' ' -f1-3 /proc/loadavg"),
        # Other processes busy at the start (this bench shares the machine with them).
        "busy": busy_processes(),
    }


def busy_processes(window=1.0, min_pct=10):
    """Processes that used >= min_pct of a CPU over `window` seconds now (the bench shares the machine)."""
    def snap():
        out = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    st = f.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
                out[pid] = (int(st[11]) + int(st[12]), cmd)
            except (OSError, IndexError, ValueError):
                pass
        return out
    a = snap()
    time.sleep(window)
    b = snap()
    busy = []
    for pid, (t, cmd) in b.items():
        if pid in a and pid != str(os.getpid()):
            pct = (t - a[pid][0]) / HZ / window * 100
            if pct >= min_pct:
                busy.append((pct, cmd[:70] or pid))
    return "; ".join(f"{c} ({p:.0f}%)" for p, c in sorted(busy, reverse=True))


def fmt(x, d=0):
    if x is None:
        return "—"
    return f"{x:,.{d}f}"


def ms(us):
    return "—" if us is None else f"{us / 1000:.2f} ms"


def verdict(ok):
    return "**PASS**" if ok else "**MISS**"


def mb(n_bytes):
    return f"{n_bytes / 1e6:,.1f} MB"


def secs(s):
    return f"{s:.2f} s"


SAVE_ROWS = (  # (figure, its value for one kind's results, format)
    ("used_memory of the data (delta)", lambda k: k["used_memory"], mb),
    ("BGSAVE: time (the command to the child's exit)", lambda k: k["bgsave"]["child_s"], secs),
    ("BGSAVE: time until INFO shows it done (+ the server's cron)", lambda k: k["bgsave"]["done_s"], secs),
    ("BGSAVE: fork (INFO latest_fork_usec)", lambda k: k["bgsave"]["fork_us"], ms),
    ("RDB file size", lambda k: k["bgsave"]["file_bytes"], mb),
    ("BGSAVE child: peak Private_Dirty", lambda k: k["bgsave"]["child_private_kb"] * 1024, mb),
    ("BGSAVE child: Redis's own copy-on-write figure (rdb_last_cow_size)", lambda k: k["bgsave"]["cow_kb"] * 1024, mb),
    ("BGSAVE child: peak VmHWM", lambda k: k["bgsave"]["child_hwm_kb"] * 1024, mb),
    ("server VmRSS when it forked", lambda k: k["bgsave"]["server_rss_kb"] * 1024, mb),
    ("AOF rewrite: time (the command to the child's exit)", lambda k: k["aof"]["child_s"], secs),
    ("AOF file size (base, commands only)", lambda k: k["aof"]["file_bytes"], mb),
    ("AOF rewrite child: peak Private_Dirty", lambda k: k["aof"]["child_private_kb"] * 1024, mb),
    ("AOF rewrite child: Redis's own copy-on-write figure (aof_last_cow_size)", lambda k: k["aof"]["cow_kb"] * 1024,
     mb),
    ("AOF rewrite child: peak VmHWM", lambda k: k["aof"]["child_hwm_kb"] * 1024, mb),
    ("DEBUG RELOAD: wall time (the server is blocked)", lambda k: k["reload"]["wall_s"], secs),
    ("DEBUG RELOAD: server's peak growth (VmHWM after − VmRSS before)",
     lambda k: k["reload"]["peak_growth_kb"] * 1024, mb),
    ("restart from the RDB: until PING answers and loading:0", lambda k: k["load"]["wall_s"], secs),
    ("restart: the server's own `DB loaded from disk`", lambda k: k["load"]["server_s"], secs),
    ("restart: the server's peak over its RSS once loaded (VmHWM − VmRSS)",
     lambda k: k["load"]["peak_over_rss_kb"] * 1024, mb),
    ("used_memory of the data after the restart", lambda k: k["load"]["used_memory"], mb),
)


def save_targets(sv):
    if not isinstance(sv, dict):
        return [("persistence of a queue vs a stream: save child memory, RDB size, BGSAVE and load time",
                 "not measured", "—")]
    o, st, n = sv["kinds"]["once"], sv["kinds"]["stream"], f"{sv['jobs']:,}"
    share = o["bgsave"]["child_private_kb"] * 1024 / o["used_memory"]
    rows = [(f"BGSAVE child's private memory ≤ 10% of the queue's used_memory ({n} jobs; peak smaps_rollup "
             "Private_Dirty)", f"{share:.1%} ({mb(o['bgsave']['child_private_kb'] * 1024)} of "
             f"{mb(o['used_memory'])})", verdict(share <= 0.10))]
    for what, need, value, show in (("RDB size", 1.5, lambda k: k["bgsave"]["file_bytes"], mb),
                                    ("BGSAVE time", 2, lambda k: k["bgsave"]["child_s"], secs),
                                    ("load time (restart until PING and loading:0)", 2,
                                     lambda k: k["load"]["wall_s"], secs)):
        r = value(o) / value(st)
        rows.append((f"{what} of a {n}-job queue ≤ {need}× a {n}-entry stream's",
                     f"{r:.2f}× ({show(value(o))} vs {show(value(st))})", verdict(r <= need)))
    return rows


def save_report(sv, cfg):
    L = [f"## 15. Persistence: a queue of {cfg.save_jobs:,} jobs vs a stream of as many entries — BGSAVE, AOF "
         "rewrite, DEBUG RELOAD, restart", ""]
    if not isinstance(sv, dict):
        return L + [f"Failed / not run: {sv}", ""]
    o, st = sv["kinds"]["once"], sv["kinds"]["stream"]
    reset = "done" if o["reload"]["hwm_reset"] else "**refused**: VmHWM after may be an older peak"
    L += ["A fresh server per structure (`--save '' --appendonly no`, `aof-use-rdb-preamble no`), 16-byte distinct "
          "payloads pushed by the driver, then in turn: BGSAVE; `CONFIG SET appendonly yes` (an AOF rewrite "
          "writing commands), then off; DEBUG RELOAD; a new server started on the BGSAVE's RDB. While a child runs, "
          "its /proc/<pid>/status VmHWM and smaps_rollup Private_Dirty are read every ~5 ms "
          f"({o['bgsave']['samples']} / {st['bgsave']['samples']} BGSAVE samples), the largest kept: Private_Dirty "
          "counts the pages no longer shared with the server (the child's own allocations and copy-on-write), "
          "VmHWM includes the shared ones. A child's time runs from the command to its exit; the server notices "
          "the exit in its cron, up to 100 ms later. DEBUG RELOAD's peak: VmHWM reset through "
          f"/proc/<pid>/clear_refs first ({reset}). RDB strings are LZF-compressed (rdbcompression yes) and the "
          f"payloads, hex counters, compress well: both files can be smaller than the payloads alone "
          f"({mb(16 * sv['jobs'])}).",
          "", "| figure | Once | stream | Once ÷ stream |", "| --- | ---: | ---: | ---: |"]
    for label, value, show in SAVE_ROWS:
        a_, b_ = value(o), value(st)
        ratio = f"{a_ / b_:.2f}" if a_ is not None and b_ else "—"
        L.append(f"| {label} | {show(a_) if a_ is not None else '—'} | {show(b_) if b_ is not None else '—'} | "
                 f"{ratio} |")
    return L + [""]


def report(cfg, m, feats, R, elapsed):
    L = []
    a = L.append
    a("# Once benchmark results")
    a("")
    a(f"Generated by `make bench` (bench/run) on {m['date']}; the whole run took {elapsed:.0f} s"
      + (" (**--quick sizes: not the real figures**)" if cfg.quick else "") + ".")
    a("")
    a("| machine | |")
    a("| --- | --- |")
    a(f"| nproc | {m['nproc']} |")
    a(f"| CPU | {m['cpu']} |")
    a(f"| kernel | {m['kernel']} |")
    a(f"| server | {m['server']} |")
    a(f"| load average at start | {m['load']} |")
    a(f"| other busy processes at start (≥ 10% CPU) | {m['busy'] or 'none'} |")
    a(f"| module | `{os.path.relpath(MODULE, ROOT)}`" + ("" if feats["loaded"] else " — **not available**") + " |")
    a("")
    missing = [k for k in ("push", "reserve", "block", "ack", "ack_fetch", "stats", "push_at", "info_once")
               if not feats[k]]
    if missing:
        a("**Not measured / incomplete because the module lacks:** " + ", ".join(missing) + ".")
        for n in feats["notes"]:
            a(f"- {n}")
        a("")

    # Targets
    T = []  # (target, measured, verdict)
    p = R.get("push")
    if isinstance(p, dict) and "ONCE.PUSH" in p["cmds"]:
        # Paired: the median of the per-round ratios (each round runs both back to back), steadier than the ratio
        # of the medians when the machine's speed drifts during the run.
        ratio = statistics.median(p["round_ratios"])
        cost = p["cmds"]["ONCE.PUSH"]["usec"] / p["cmds"]["RPUSH"]["usec"]
        T.append(("ONCE.PUSH ≥ 0.9× RPUSH throughput (median of per-round ratios)",
                  f"{ratio:.2f}× (server µs/call: {cost:.1f}× RPUSH's)", verdict(ratio >= 0.9)))
    else:
        T.append(("ONCE.PUSH ≥ 0.9× RPUSH throughput", "not measured", "—"))
    c = R.get("cycle")
    once_key = None
    if isinstance(c, dict):
        sysr = c["systems"]
        once_key = "once" if sysr.get("once", {}).get("median") else (
            "once-2rtt" if sysr.get("once-2rtt", {}).get("median") else None)
    if once_key:
        o = sysr[once_key]["median"]
        for base, need, name in (("streams-2rtt", 1.2, "Streams"), ("lua-2rtt", 3.0, "the Lua queue")):
            b = sysr[base]["median"]
            if b:
                T.append((f"full cycle ≥ {need}× {name}", f"{o / b:.2f}×", verdict(o / b >= need)))
        for base, need, name in (("streams", 1.2, "Streams, pipelined ack (stricter)"),
                                 ("lua", 3.0, "the Lua queue, pipelined ack (stricter)")):
            b = sysr[base]["median"]
            if b:
                T.append((f"full cycle ≥ {need}× {name}", f"{o / b:.2f}×", verdict(o / b >= need)))
    else:
        T.append(("full cycle ≥ 1.2× Streams, ≥ 3× Lua queue", "not measured", "—"))
    mem = R.get("memory")
    if isinstance(mem, dict) and "once" in mem:
        ov = mem["once"]["over_payload"]
        T.append(("≤ 64 bytes per job beyond the 16-byte payload", f"{ov:.1f} B", verdict(ov <= 64)))
    else:
        T.append(("≤ 64 bytes per job beyond payload", "not measured", "—"))
    if isinstance(mem, dict) and "once" in mem:
        x = {k: v["bytes_per_job"] / mem["stream"]["bytes_per_job"] for k, v in mem.items()}
        T.append(("memory per queued 16-byte job ≤ 1.3× a stream entry's (goal ≤ 1×; judged on bare jobs)",
                  f"{x['once']:.2f}× ({mem['once']['bytes_per_job']:.1f} vs {mem['stream']['bytes_per_job']:.1f} B); "
                  f"with ID {x['once-id']:.2f}×, DELAY {x['once-delay']:.2f}×, GROUP {x['once-group']:.2f}×",
                  verdict(x["once"] <= 1.3)))
    else:
        T.append(("memory per queued 16-byte job ≤ 1.3× a stream entry's", "not measured", "—"))
    dl = R.get("delayed")
    if isinstance(dl, dict):
        tick = dl["info_after"].get("once_timer_max_tick_us")
        if tick is not None and tick != "":
            T.append(("worst stall ≤ 5 ms promoting 1M jobs — server side (INFO once once_timer_max_tick_us)",
                      f"{int(tick) / 1000:.2f} ms", verdict(int(tick) <= 5000)))
        pp = dl["ping_promotion"]
        T.append(("worst stall ≤ 5 ms promoting 1M jobs — client ping p99.9",
                  f"{ms(pp['p999_us'])} (max {ms(pp['max_us'])}; idle max {ms(dl['ping_idle']['max_us'])})",
                  verdict(pp["p999_us"] <= 5000) if pp["p999_us"] is not None else "—"))
    else:
        T.append(("worst stall ≤ 5 ms while promoting 1M jobs", "not measured", "—"))
    w = R.get("wakeup")
    if isinstance(w, dict) and "p99_us" in w.get("once", {}):
        T.append(("wake-up p99 ≤ 1 ms", f"{w['once']['p99_us'] / 1000:.3f} ms", verdict(w["once"]["p99_us"] <= 1000)))
    else:
        T.append(("wake-up p99 ≤ 1 ms", "not measured", "—"))

    cn = R.get("cancel")
    if isinstance(cn, dict):
        med = cn["median"]
        T.append((f"CANCEL of {cn['ids']:,} ids: the middle of a {cn['jobs']:,}-job ready line ≤ 2× the head "
                  "(server time, median of per-round ratios)",
                  f"{cn['ratio']:.2f}× (head {ms(med['head']['server_us'])}, middle {ms(med['middle']['server_us'])})",
                  verdict(cn["ratio"] <= 2)))
    else:
        T.append(("CANCEL from the middle ≤ 2× from the head", "not measured", "—"))
    ct = R.get("crontick")
    if isinstance(ct, dict) and all(r_["info_after"].get("once_timer_max_tick_us") not in (None, "")
                                    for r_ in ct["runs"]):
        ticks = [(int(r_["info_after"]["once_timer_max_tick_us"]), r_) for r_ in ct["runs"]]
        worst = max(t for t, _ in ticks)
        r0 = ct["runs"][0]
        T.append((f"longest timer tick ≤ 2 ms, {cfg.tick_schedules:,} schedules @every 10ms + {r0['jobs']:,} due "
                  "jobs (INFO once once_timer_max_tick_us, the worst spread)",
                  ", ".join(f"{t / 1000:.2f} ms ({r_['keys']} key{'s' if r_['keys'] > 1 else ''})" for t, r_ in ticks),
                  verdict(worst <= 2000)))
    else:
        T.append(("longest timer tick ≤ 2 ms with 10,000 schedules @every 10ms + 1M due jobs", "not measured", "—"))

    lt = R.get("listtail")
    if isinstance(lt, dict):
        for st, v in lt["states"].items():
            med = v["median"]
            T.append((f"ONCE.LIST COUNT 100 at the tail of {lt['jobs']:,} {st} jobs ≤ 2× at the head (server time, "
                      "median of per-round ratios)",
                      f"{v['ratio']:.2f}× (head {med['head']['server_us']:.1f} µs, tail {med['tail']['server_us']:.1f} µs)",
                      verdict(v["ratio"] <= 2)))
    else:
        T.append(("ONCE.LIST COUNT 100 at the tail of 1M jobs ≤ 2× at the head", "not measured", "—"))
    pg = R.get("purge")
    if isinstance(pg, dict):
        tick = pg["info_after"].get("once_timer_max_tick_us")
        worst_us = max(pg["purge_us"], int(tick) if tick not in (None, "") else 0)
        T.append((f"worst stall ≤ 5 ms purging {pg['jobs']:,} dead jobs — server side (the PURGE call, then INFO once "
                  "once_timer_max_tick_us while the timer frees them)",
                  f"PURGE {ms(pg['purge_us'])}, timer max tick {ms(int(tick)) if tick not in (None, '') else '—'}",
                  verdict(worst_us <= 5000)))
        pp = pg["ping_purge"]
        T.append((f"worst stall ≤ 5 ms purging {pg['jobs']:,} dead jobs — longest client PING round trip",
                  f"{ms(pp['max_us'])} (p99.9 {ms(pp['p999_us'])}; idle max {ms(pg['ping_idle']['max_us'])})",
                  verdict(pp["max_us"] <= 5000) if pp["max_us"] is not None else "—"))
    else:
        T.append(("worst stall ≤ 5 ms purging 1M dead jobs", "not measured", "—"))
    nt = R.get("notify")
    if isinstance(nt, dict):
        T.append((f"ONCE.PUSH throughput, notify-keyspace-events {nt['flags']} ÷ off (median of per-round ratios; "
                  "no target, reported)",
                  f"{nt['ratio']:.2f}× ({fmt(nt['modes']['on']['rps'])} vs {fmt(nt['modes']['off']['rps'])} ops/s)", "—"))
    else:
        T.append(("ONCE.PUSH throughput with keyspace notifications on ÷ off", "not measured", "—"))
    T.append(listfilter.target_row(R.get("listfilter")))

    bk = R.get("bulk")
    if isinstance(bk, dict):
        med = bk["median"]
        T.append(("ONCE.BULK of 100 payloads per call ÷ a pipeline of 100 ONCE.PUSH, jobs/s (no target, reported)",
                  f"{med['ONCE.BULK']['jobs_per_s'] / med['ONCE.PUSH']['jobs_per_s']:.2f}× "
                  f"({fmt(med['ONCE.BULK']['jobs_per_s'])} vs {fmt(med['ONCE.PUSH']['jobs_per_s'])} jobs/s; "
                  f"XADD ×100 {fmt(med['XADD']['jobs_per_s'])})", "—"))
    else:
        T.append(("ONCE.BULK of 100 payloads per call ÷ a pipeline of 100 ONCE.PUSH", "not measured", "—"))
    mt = R.get("match")
    if isinstance(mt, dict):
        mw = mt["walks"][1000]
        T.append((f"ONCE.LIST … MATCH over {mt['jobs']:,} ready jobs: longest call ≤ 10 ms (COUNT 1000: at most "
                  "10,000 jobs examined per call; SLOWLOG)",
                  f"{ms(mw['longest_us'])} ({mw['calls']} calls, {ms(mw['total_us'])} in all)",
                  verdict(mw["longest_us"] <= 10_000)))
    else:
        T.append(("ONCE.LIST … MATCH over 1M ready jobs: longest call ≤ 10 ms", "not measured", "—"))

    T += save_targets(R.get("save"))
    T.append(batch_target(R.get("batch")))
    T += pyworkers.targets(R.get("pyworkers"))
    a("## Targets")
    a("")
    a("| target | measured | |")
    a("| --- | --- | --- |")
    for t in T:
        a(f"| {t[0]} | {t[1]} | {t[2]} |")
    a("")

    # 1
    a(f"## 1. Push throughput — redis-benchmark -c 50 -P 16 -n {cfg.push_n:,}, 16-byte payload")
    a("")
    if isinstance(p, dict):
        a(f"Median of {cfg.push_reps} runs per command, interleaved (the order rotates each round); "
          "`usec_per_call` from INFO commandstats (server time inside the command).")
        a("")
        a("| command | ops/s (median) | ×RPUSH | µs/call (median) | ×RPUSH | ops/s, every run |")
        a("| --- | ---: | ---: | ---: | ---: | --- |")
        rp = p["cmds"]["RPUSH"]
        for name, v in p["cmds"].items():
            a(f"| `{name}` | {fmt(v['rps'])} | {v['rps'] / rp['rps']:.2f} | {v['usec']:.3f} | "
              f"{v['usec'] / rp['usec']:.2f} | {', '.join(fmt(x) for x in v['rps_all'])} |")
        if p["round_ratios"]:
            rr = p["round_ratios"]
            a("")
            a(f"ONCE.PUSH/RPUSH throughput per round: {', '.join(f'{x:.2f}' for x in rr)} "
              f"(median {statistics.median(rr):.2f}; the target uses this paired figure).")
    else:
        a(f"Failed: {p}")
    a("")

    # 2
    a(f"## 2. Full cycle push → reserve → ack — {cfg.producers} producers (pipelined, 64 per write) + "
      f"{cfg.workers} workers (one job at a time), {cfg.cycle_jobs:,} jobs")
    a("")
    if isinstance(c, dict):
        a(f"Jobs/s = jobs / (first push → server holds no unacked job). Median of {cfg.cycle_reps} interleaved "
          "runs. Server CPU = redis-server user+sys CPU time (/proc) per job. Workers block "
          f"(BLOCK 1000) where the system can; the Lua queue polls (200 µs sleep when empty).")
        a("")
        a("| system | jobs/s (median) | Once ÷ this | server CPU µs/job | jobs/s, every run |")
        a("| --- | ---: | ---: | ---: | --- |")
        o = c["systems"][once_key]["median"] if once_key else None
        for k in c["order"]:
            v = c["systems"][k]
            rel = f"{o / v['median']:.2f}" if (o and v["median"]) else "—"
            err = f" — error: {v['err'][:200]}" if v["err"] else ""
            a(f"| {v['label']}{err} | {fmt(v['median'])} | {rel} | {fmt(v['cpu_median'], 1)} | "
              f"{', '.join(fmt(x) for x in v['jps'])} |")
        for n in c["notes"]:
            a(f"- {n}")
        a("")
        a("The Lua queue: push = `LPUSH wait`; reserve = one script that moves due jobs from the delayed zset to "
          "`wait`, `LMOVE wait active` and `ZADD` the lease; ack = one script `LREM active` + `ZREM` lease "
          "(bench/driver/src/main.rs). It is the bare data movement of the BullMQ pattern (no job hash, no "
          "events), so it flatters the Lua queue.")
    else:
        a(f"Failed: {c}")
    a("")

    # 3
    a(f"## 3. Memory per job — {cfg.mem_jobs:,} queued 16-byte jobs (distinct payloads), "
      "INFO memory used_memory delta / jobs, fresh server each")
    a("")
    if isinstance(mem, dict):
        a("Bare jobs, lists and streams are pushed by the driver; Once jobs with an option by Python on one raw "
          "connection, 1,000 per write.")
        a("")
        a("| structure | bytes/job | beyond the 16-byte payload | ×stream |")
        a("| --- | ---: | ---: | ---: |")
        for v in mem.values():
            a(f"| {v['label']} | {v['bytes_per_job']:.1f} | {v['over_payload']:.1f} | "
              f"{v['bytes_per_job'] / mem['stream']['bytes_per_job']:.2f} |")
    else:
        a(f"Failed: {mem}")
    a("")

    # 4
    a(f"## 4. {cfg.delayed_jobs:,} delayed jobs due at the same instant (ONCE.PUSH … AT t)")
    a("")
    if isinstance(dl, dict):
        ia, ib = dl["info_after"], dl["info_before"]
        a(f"t was set {dl['lead_ms']:,.0f} ms ahead (2× the calibrated load time + 1.5 s, at least "
          f"{cfg.lead_ms} ms). Loaded in {dl['load_secs']:.2f} s, finishing {dl['load_end_ms_before_due']:.0f} ms before t "
          f"(ready right after loading: {fmt(dl['ready_at_load'])}). ONCE.STATS polled every ~1 ms; one client "
          "pings back to back throughout and every RTT is recorded.")
        if dl["load_end_ms_before_due"] < 200 or dl["ready_at_load"]:
            a("")
            a("**Warning: loading ended too close to (or after) t: raise --lead-ms; the figures below are not "
              "those of 1M jobs falling due together.**")
        a("")
        a("| figure | value |")
        a("| --- | ---: |")
        a(f"| first job ready, after t | {fmt(dl['first_ready_ms'], 1)} ms |")
        a(f"| all {cfg.delayed_jobs:,} ready, after t | {fmt(dl['all_ready_ms'], 1)} ms |")
        if ia:
            ticks = int(ia.get("once_timer_ticks", 0)) - int(ib.get("once_timer_ticks", 0))
            a(f"| INFO once once_timer_max_tick_us | {ia.get('once_timer_max_tick_us')} µs |")
            a(f"| INFO once timer ticks during the run | {ticks:,} |")
        pp, pi = dl["ping_promotion"], dl["ping_idle"]
        a(f"| ping RTT while promoting (t−100 ms … all ready+300 ms): n / p50 / p99 / p99.9 / max | "
          f"{fmt(pp['n'])} / {fmt(pp['p50_us'])} / {fmt(pp['p99_us'])} / {fmt(pp['p999_us'])} / "
          f"{fmt(pp['max_us'])} µs |")
        a(f"| ping RTT idle, same server before t (noise baseline): n / p50 / p99 / p99.9 / max | "
          f"{fmt(pi['n'])} / {fmt(pi['p50_us'])} / {fmt(pi['p99_us'])} / {fmt(pi['p999_us'])} / "
          f"{fmt(pi['max_us'])} µs |")
        a(f"| worst ping, at t + | {dl['worst_ping_at_ms']:.1f} ms |")
        a("")
        a("Client-side ping maxima on this VM are dominated by scheduling noise (see the idle baseline); the "
          "server-side timer tick is the reliable stall figure.")
    else:
        a(f"Failed / not run: {dl}")
    a("")

    # 5
    a(f"## 5. Push → blocked worker wake-up latency — {cfg.wake_samples:,} samples (+100 warm-up), 1 ms gap")
    a("")
    if isinstance(w, dict):
        a("Time from just before the producer writes the push to the worker having parsed the job (same process, "
          "monotonic clock; the payload carries the send time).")
        a("")
        a("| path | p50 µs | p99 µs | p99.9 µs | max µs | mean µs |")
        a("| --- | ---: | ---: | ---: | ---: | ---: |")
        for v in w.values():
            if "err" in v:
                a(f"| {v['label']} | error: {v['err'][:200]} | | | | |")
            else:
                a(f"| {v['label']} | {fmt(v['p50_us'])} | {fmt(v['p99_us'])} | {fmt(v['p999_us'])} | "
                  f"{fmt(v['max_us'])} | {fmt(v['mean_us'], 1)} |")
        if "once" not in w:
            a("- Once not measured: ONCE.RESERVE BLOCK missing.")
    else:
        a(f"Failed / not run: {w}")
    a("")
    # 6
    cl = R.get("cluster")
    a("## 6. A cluster of 3 masters vs one node — the same 30 queues, producers and workers (bench/cluster_bench.py)")
    a("")
    if isinstance(cl, dict):
        a(f"{cl['jobs']:,} 16-byte jobs over {cl['queues']} queues ({'/'.join(map(str, cl['queues_per_master']))} "
          f"per master); push: {cl['producers']} producer processes, 64 ONCE.PUSH per round trip; drain: "
          f"{cl['workers']} worker processes, ack-and-fetch (`ONCE.RESERVE q ACK id`, one job per command, one "
          f"command per owned queue per round trip). Clients go straight to each queue's owner. Median of "
          f"{cl['reps']} interleaved runs; server CPU summed over the nodes. The {cl['nproc']} CPUs of this machine "
          "are shared by every server and client, so the cluster column is what 3 shards give on one small "
          "machine, not on 3 machines.")
        a("")
        a("| setup | push jobs/s | server CPU µs/job | drain jobs/s | server CPU µs/job | drain jobs/s, every run |")
        a("| --- | ---: | ---: | ---: | ---: | --- |")
        for name, label in (("single", "one node"), ("cluster", "cluster, 3 masters")):
            m_ = cl["median"][name]
            a(f"| {label} | {fmt(m_['push_jps'])} | {m_['push_cpu_us']:.1f} | {fmt(m_['drain_jps'])} | "
              f"{m_['drain_cpu_us']:.1f} | {', '.join(fmt(r['drain_jps']) for r in cl['runs'][name])} |")
        a("")
        a(f"Cluster ÷ one node: push {cl['ratio_push']:.2f}×, drain {cl['ratio_drain']:.2f}×.")
    else:
        a(f"Failed / not run: {cl}")
    a("")
    # 7
    a(f"## 7. ONCE.CANCEL of {cfg.cancel_ids:,} ids from the head vs the middle of a {cfg.cancel_jobs:,}-job "
      "ready line")
    a("")
    if isinstance(cn, dict):
        a(f"One queue of {cn['jobs']:,} ready jobs (one priority, pushed pipelined); one ONCE.CANCEL with the first "
          f"{cn['ids']:,} ids, one with the {cn['ids']:,} ids in the middle, on the same line (the order alternates "
          "by round). Server time = INFO commandstats `usec` of that single call (CONFIG RESETSTAT before it); "
          "wall = the client's round trip.")
        a("")
        a("| round | head: server | head: wall | middle: server | middle: wall | middle ÷ head |")
        a("| --- | ---: | ---: | ---: | ---: | ---: |")
        for i, r_ in enumerate(cn["rounds"], 1):
            a(f"| {i} | {ms(r_['head']['server_us'])} | {r_['head']['wall_ms']:.2f} ms | "
              f"{ms(r_['middle']['server_us'])} | {r_['middle']['wall_ms']:.2f} ms | {r_['ratio']:.2f}× |")
    else:
        a(f"Failed / not run: {cn}")
    a("")

    # 8
    a(f"## 8. Longest timer tick — {cfg.tick_schedules:,} schedules `@every 10ms` while {cfg.tick_jobs:,} delayed "
      "jobs fall due at one instant")
    a("")
    if isinstance(ct, dict):
        a(f"A fresh server per run (so the longest tick counts from zero): {cfg.tick_jobs:,} jobs pushed with `AT t`, "
          f"then the schedules, spread over 1 key or several, then t, every job ready, and {cfg.tick_after_s} s more.")
        a("")
        a("| schedules on | made in | made before t | max tick, schedules alone (just before t) | max tick at the end "
          "| all ready after t | timer ticks from t−0.1 s | jobs fired |")
        a("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r_ in ct["runs"]:
            ib, ia = r_["info_before"], r_["info_after"]
            a(f"| {r_['keys']} key{'s' if r_['keys'] > 1 else ''} ({r_['accepted']:,} accepted) | "
              f"{r_['schedule_secs']:.2f} s | {r_['before_due_ms']:,} ms | {ib.get('once_timer_max_tick_us')} µs | "
              f"{ia.get('once_timer_max_tick_us')} µs | {fmt(r_['all_ready_ms'])} ms ({r_['ready']:,} ready) | "
              f"{int(ia.get('once_timer_ticks', 0)) - int(ib.get('once_timer_ticks', 0)):,} | {r_['fired']:,} |")
        for r_ in ct["runs"]:
            if r_["refused"] is not None:
                a(f"- {r_['keys']} key(s): {r_['schedules'] - r_['accepted']:,} schedules refused "
                  f"(first error: {r_['refused']}).")
            if r_["before_due_ms"] < 200:
                a(f"- {r_['keys']} key(s): **the schedules were still being made when the jobs fell due.**")
    else:
        a(f"Failed / not run: {ct}")
    a("")
    # 9
    a(f"## 9. ONCE.LIST COUNT 100 at the tail vs the head of a {cfg.list_jobs:,}-job state")
    a("")
    if isinstance(lt, dict):
        a(f"One queue of {lt['jobs']:,} jobs, first all ready (pushed pipelined), then all dead (the same jobs pushed "
          "with RETRIES 0, reserved and NACKed DEAD by a Lua script, 10,000 per call). The cursor of the tail is "
          f"found by walking the state with COUNT 1000 inside the server (a Lua loop over ONCE.LIST) to about 1,000 "
          f"jobs before its end; then {lt['calls']} calls of `ONCE.LIST q <state> CURSOR <c> COUNT 100` at the head "
          "(cursor 0) and as many at that tail cursor, the order alternating by round. Server = INFO commandstats "
          "`usec_per_call` (CONFIG RESETSTAT before each batch); wall = the client's round trip, reply parsing "
          "included.")
        a("")
        a("| state | round | head: server µs/call | head: wall µs/call | tail: server µs/call | tail: wall µs/call "
          "| tail ÷ head | walk to the tail |")
        a("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for st, v in lt["states"].items():
            for i, r_ in enumerate(v["rounds"], 1):
                a(f"| {st} | {i} | {r_['head']['server_us']:.1f} | {r_['head']['wall_us']:.0f} | "
                  f"{r_['tail']['server_us']:.1f} | {r_['tail']['wall_us']:.0f} | {r_['ratio']:.2f}× | "
                  f"{v['walk_s']:.1f} s |")
    else:
        a(f"Failed / not run: {lt}")
    a("")

    # 10
    a(f"## 10. ONCE.PURGE of {cfg.purge_jobs:,} dead jobs — the call, then the timer freeing them")
    a("")
    if isinstance(pg, dict):
        ib, ia = pg["info_before"], pg["info_after"]
        a(f"{pg['jobs']:,} dead jobs on one key (made in {pg['load_s']:.1f} s as in section 9; MEMORY USAGE "
          f"{pg['memory_before'] / 1e6:.0f} MB), a fresh server started with `latency-monitor-threshold 1`. One "
          "client pings back to back on its own connection from 1 s before the PURGE until 200 ms after MEMORY "
          "USAGE of the key fell below a tenth of what it was (polled every 10 ms); every round trip is recorded.")
        a("")
        a("| figure | value |")
        a("| --- | ---: |")
        a(f"| PURGE call, server (INFO commandstats usec) | {ms(pg['purge_us'])} |")
        a(f"| PURGE call, wall (client round trip) | {pg['purge_wall_ms']:.2f} ms |")
        a(f"| memory freed (below 1/10) after the PURGE | "
          f"{fmt(pg['freed_ms'], 0) + ' ms' if pg['freed_ms'] is not None else 'not within 120 s'} |")
        a(f"| INFO once once_timer_max_tick_us before → after | {ib.get('once_timer_max_tick_us')} → "
          f"{ia.get('once_timer_max_tick_us')} µs |")
        a(f"| INFO once timer ticks during the run | "
          f"{int(ia.get('once_timer_ticks', 0)) - int(ib.get('once_timer_ticks', 0)):,} |")
        a(f"| LATENCY LATEST (event: max ms) since the PURGE | "
          f"{', '.join(f'{k}: {v}' for k, v in pg['latency_latest_ms'].items()) or 'nothing ≥ 1 ms'} |")
        pp, pi = pg["ping_purge"], pg["ping_idle"]
        a(f"| ping RTT from the PURGE to freed + 200 ms: n / p50 / p99 / p99.9 / max | {fmt(pp['n'])} / "
          f"{fmt(pp['p50_us'])} / {fmt(pp['p99_us'])} / {fmt(pp['p999_us'])} / {fmt(pp['max_us'])} µs |")
        a(f"| ping RTT idle, the second before (noise baseline): n / p50 / p99 / p99.9 / max | {fmt(pi['n'])} / "
          f"{fmt(pi['p50_us'])} / {fmt(pi['p99_us'])} / {fmt(pi['p999_us'])} / {fmt(pi['max_us'])} µs |")
        a(f"| longest ping, started at PURGE + | {pg['worst_ping_at_ms']:.1f} ms |")
    else:
        a(f"Failed / not run: {pg}")
    a("")

    # 11
    a(f"## 11. ONCE.PUSH throughput with keyspace notifications off vs on — redis-benchmark -c 50 -P 16 "
      f"-n {cfg.notify_n:,}")
    a("")
    if isinstance(nt, dict):
        a(f"The same server, `CONFIG SET notify-keyspace-events ''` vs `{nt['flags']}` (which includes `d`, the "
          f"module class: checked before the runs, a subscriber got `once.push`: "
          f"{'yes' if nt['delivered'] else '**no**'}; with '' it got nothing: "
          f"{'yes' if nt['silent_when_off'] else '**no**'}). No client is subscribed during the runs, so this is the "
          f"cost of raising the notification, not of delivering it. Median of {cfg.notify_reps} rounds, the order "
          "alternating; `usec_per_call` from INFO commandstats.")
        a("")
        a("| notifications | ops/s (median) | µs/call (median) | ops/s, every run |")
        a("| --- | ---: | ---: | --- |")
        for mode, v in nt["modes"].items():
            a(f"| {mode} | {fmt(v['rps'])} | {v['usec']:.3f} | {', '.join(fmt(x) for x in v['rps_all'])} |")
        a("")
        a(f"On ÷ off per round: {', '.join(f'{x:.2f}' for x in nt['round_ratios'])} (median {nt['ratio']:.2f}).")
    else:
        a(f"Failed / not run: {nt}")
    a("")
    # 12
    fl = R.get("flow")
    a(f"## 12. Flow control: RESERVE + ACK with no limits, CONCURRENCY, RATE, {cfg.flow_groups:,} groups; drained "
      "groups' memory")
    a("")
    if isinstance(fl, dict):
        a(f"One server; per mode the queue is emptied (FLUSHALL), configured, {fl['jobs']:,} jobs pushed (pipelined), "
          "then reserved and acked in batches of 500 (a pipeline of 500 `ONCE.RESERVE fq`, then one of their ACKs), "
          f"INFO commandstats reset before the cycle. The groups mode spreads the jobs over {fl['groups']:,} groups "
          f"(`PUSH … GROUP g<i mod {fl['groups']:,}>`), so every reservation turns the ring and every ACK frees a "
          f"drained group. {len(fl['rounds'])} round(s), the order of the modes alternating; medians. (RATE n is at "
          "most 100,000, so the 1M reservations/s rate is written RATE 100000 PER 100.)")
        a("")
        a("| mode | ONCE.RESERVE µs/call (server) | ONCE.ACK µs/call (server) | cycles/s (client, pipelined) | "
          "÷ no limits (RESERVE µs) |")
        a("| --- | ---: | ---: | ---: | ---: |")
        base = fl["median"]["none"]["reserve_us"]
        for mode, label, _ in FLOW_MODES:
            label = f"jobs spread over {fl['groups']:,} groups" if mode == "groups" else label
            v = fl["median"][mode]
            a(f"| {label} | {v['reserve_us']:.2f} | {v['ack_us']:.2f} | {fmt(v['cycles_per_s'])} | "
              f"{v['reserve_us'] / max(base, 0.001):.2f}× |")
        a("")
        a(f"Memory of {fl['groups']:,} drained groups (used_memory; the queue exists before; one job pushed to each "
          "group, then every job reserved and acked):")
        a("")
        a("| queue setting | before | after the pushes (groups) | drained (groups) | drained − before | "
          "windows ended + one more reserve (groups) |")
        a("| --- | ---: | ---: | ---: | ---: | ---: |")
        for label, mm in fl["memory"].items():
            later = (f"{mm['after_windows'] - mm['before']:+,} B ({mm['groups_after_windows']:,})"
                     if "after_windows" in mm else "—")
            a(f"| {label} | {mm['before']:,} B | {mm['pushed'] - mm['before']:+,} B ({mm['groups_pushed']:,}) | "
              f"{mm['drained'] - mm['before']:+,} B ({mm['groups_drained']:,}) | "
              f"{(mm['drained'] - mm['before']) / fl['groups']:.1f} B/group | {later} |")
    else:
        a(f"Failed / not run: {fl}")
    a("")
    # 13
    a(f"## 13. ONCE.BULK of 100 payloads per call vs a pipeline of 100 ONCE.PUSH vs a pipeline of 100 XADD — "
      f"{cfg.bulk_jobs:,} jobs, 16-byte payload")
    a("")
    if isinstance(bk, dict):
        a("One connection; each round of 100 jobs is one write (its bytes encoded once) and then its replies: "
          "one BULK call, or 100 PUSH or XADD commands pipelined. jobs/s from the client's clock; server µs/job = "
          "INFO commandstats `usec` ÷ jobs (CONFIG RESETSTAT and FLUSHALL before each run). "
          f"{len(next(iter(bk['runs'].values())))} run(s) per way, the order rotating; medians.")
        a("")
        a("| way | jobs/s (median) | ÷ PUSH pipeline | server µs/job (median) | jobs/s, every run |")
        a("| --- | ---: | ---: | ---: | --- |")
        base = bk["median"]["ONCE.PUSH"]["jobs_per_s"]
        for name, label, _ in BULK_WAYS:
            v = bk["median"][name]
            a(f"| {label} | {fmt(v['jobs_per_s'])} | {v['jobs_per_s'] / base:.2f}× | {v['server_us_per_job']:.3f} | "
              f"{', '.join(fmt(x['jobs_per_s']) for x in bk['runs'][name])} |")
    else:
        a(f"Failed / not run: {bk}")
    a("")
    # 14
    a(f"## 14. ONCE.LIST … MATCH over {cfg.match_jobs:,} ready jobs — every call's server time")
    a("")
    if isinstance(mt, dict):
        a(f"{mt['jobs']:,} ready jobs pushed by ONCE.BULK (10,000 per call), one of them `needle-1`; a walk "
          "`ONCE.LIST mq ready CURSOR c COUNT n MATCH needle-*` from cursor 0 to \"0\" finds it. Each call's "
          "duration from SLOWLOG (threshold 0): a call examines at most 10 × COUNT jobs (10,000 at most). "
          f"For scale: an unfiltered `ONCE.LIST mq ready COUNT 1000` takes {mt['plain_list_us']:.0f} µs (server).")
        a("")
        a("| COUNT | calls | longest call | median call | all calls |")
        a("| ---: | ---: | ---: | ---: | ---: |")
        for count, mw in mt["walks"].items():
            a(f"| {count} | {mw['calls']:,} | {mw['longest_us']:,} µs | {mw['median_us']:,.0f} µs | "
              f"{ms(mw['total_us'])} |")
    else:
        a(f"Failed / not run: {mt}")
    a("")
    L += save_report(R.get("save"), cfg)
    L += batch_report(R.get("batch"), cfg)
    a("Ratios between runs swing by about ±0.1 on this 2-core VM; the server-side figures (µs/call, server CPU "
      "per job, timer tick) are steadier than throughput. Nothing here is asserted: PASS/MISS only reports.")
    if "pyworkers" in R:
        L[-1:-1] = pyworkers.report(R["pyworkers"])
    if "listfilter" in R:
        L[-1:-1] = listfilter.report(R["listfilter"])
    if "flows" in R:
        L[-1:-1] = flows_report(R["flows"])
    if "release" in R:
        L[-1:-1] = release_report(R["release"])
    return "\n".join(L) + "\n"


# ---------------------------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=os.path.join(BENCH, "results.md"))
    ap.add_argument("--only", default="",
                    help="comma list of sections: push,cycle,memory,delayed,wakeup,cluster,cancel,crontick,"
                         "listtail,purge,notify,flow,bulk,match,save,batch,pyworkers,listfilter,flows,release")
    cfg = ap.parse_args()
    q = cfg.quick
    cfg.push_n = 200_000 if q else 1_000_000
    cfg.push_reps = 2 if q else 7
    cfg.producers, cfg.workers = 4, 4
    cfg.cycle_jobs = 20_000 if q else 100_000
    cfg.cycle_reps = 1 if q else 5
    cfg.mem_jobs = 100_000 if q else 1_000_000
    cfg.delayed_jobs = 100_000 if q else 1_000_000
    cfg.lead_ms = 1500 if q else 3000  # minimum; the driver extends it to 2x the calibrated load time + 1.5 s
    cfg.wake_samples = 300 if q else 2000
    cfg.cancel_jobs = 100_000 if q else 1_000_000
    cfg.cancel_ids = 10_000
    cfg.cancel_reps = 1 if q else 3
    cfg.tick_jobs = 100_000 if q else 1_000_000
    cfg.tick_schedules = 2_000 if q else 10_000
    cfg.tick_keys = [1, 10]
    cfg.tick_after_s = 1.0
    cfg.list_jobs = 100_000 if q else 1_000_000
    cfg.list_calls = 50 if q else 200
    cfg.list_reps = 1 if q else 3
    cfg.purge_jobs = 100_000 if q else 1_000_000
    cfg.notify_n = 200_000 if q else 1_000_000
    cfg.notify_reps = 2 if q else 5
    cfg.flow_jobs = 20_000 if q else 100_000
    cfg.flow_groups = 20_000 if q else 100_000
    cfg.flow_reps = 1 if q else 3
    cfg.bulk_jobs = 200_000 if q else 1_000_000
    cfg.bulk_reps = 1 if q else 3
    cfg.match_jobs = 200_000 if q else 1_000_000
    cfg.save_jobs = 200_000 if q else 2_000_000
    cfg.batch_jobs = 50_000 if q else 200_000
    cfg.batch_reps = 1 if q else 5
    only = set(x for x in cfg.only.split(",") if x)

    if (not only or only & {"cycle", "memory", "delayed", "wakeup", "save"}) and not os.access(DRIVER, os.X_OK):
        sys.exit(f"driver not built: {DRIVER} (run bench/run, which builds it)")
    t0 = time.time()
    m = machine()
    log(f"machine: {m['nproc']} CPUs, {m['cpu']}, load {m['load']}")
    feats = probe_module()
    log("module: " + ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in feats.items() if k != "notes"))
    for n in feats["notes"]:
        log(f"  {n}")

    R = {}
    sections = [
        ("push", bench_push, True),
        ("cycle", bench_cycle, True),
        ("memory", bench_memory, True),
        ("delayed", bench_delayed, feats["push_at"] and feats["stats"]),
        ("wakeup", bench_wakeup, True),
        ("cluster", bench_cluster, feats["push"] and feats["ack_fetch"] and feats["stats"]),
        ("cancel", bench_cancel, feats["push"]),
        ("crontick", bench_cron_tick, feats["push_at"] and feats["stats"] and feats["info_once"]),
        ("listtail", bench_list_tail, feats["push"] and feats["reserve"] and feats["list"]),
        ("purge", bench_purge, feats["push"] and feats["reserve"] and feats["purge"] and feats["info_once"]),
        ("notify", bench_notify, feats["push"]),
        ("flow", bench_flow, feats["push"] and feats["reserve"] and feats["ack"] and feats["stats"]),
        ("bulk", bench_bulk, feats["push"]),
        ("match", bench_match, feats["push"] and feats["list"]),
        ("save", bench_save, feats["push"] and feats["stats"]),
        ("batch", bench_batch, feats["push"] and feats["reserve"] and feats["stats"]),
        ("pyworkers", lambda cfg, feats: pyworkers.bench(cfg, Server, log), feats["push"] and feats["reserve"]),
        ("listfilter", lambda cfg, feats: listfilter.bench(cfg, Server, log), feats["loaded"]),
        ("flows", bench_flows, feats["push"] and feats["reserve"]),
        ("release", bench_release, feats["push"] and feats["reserve"] and feats["stats"]),
    ]
    for name, fn, can in sections:
        if only and name not in only:
            R[name] = "skipped (--only)"
            continue
        if not can:
            R[name] = "not run: the module lacks " + ("ONCE.PUSH … AT with timer promotion / ONCE.STATS")
            log(f"{name}: {R[name]}")
            continue
        log(f"section {name} ...")
        try:
            R[name] = fn(cfg, feats)
        except Exception as e:  # noqa: BLE001 - report and go on with the other sections
            traceback.print_exc()
            R[name] = f"error: {e}"
        finally:
            kill_all()
    elapsed = time.time() - t0 + float(os.environ.get("ONCE_BENCH_BUILD_SECS", "0"))
    with open(os.path.join(os.path.dirname(cfg.out), "results.json"), "w") as f:
        json.dump({"machine": m, "features": feats, "results": R, "elapsed_s": elapsed}, f, indent=1, default=str)
    text = report(cfg, m, feats, R, elapsed)
    with open(cfg.out, "w") as f:
        f.write(text)
    print(text)
    log(f"wrote {os.path.relpath(cfg.out, os.getcwd())} in {elapsed:.0f} s")
    if not q and not only and cfg.out == os.path.join(BENCH, "results.md"):
        update_readme(text)


README_BEGIN = "<!-- bench:targets:begin -->"
README_END = "<!-- bench:targets:end -->"


def update_readme(text):
    """Copies the targets table of a full run into README.md between its markers, so README quotes the run."""
    lines = text.splitlines()
    try:
        start = lines.index("## Targets")
    except ValueError:
        return
    table = []
    for line in lines[start + 1:]:
        if line.startswith("|"):
            table.append(line)
        elif table:
            break
    when = next((l for l in lines if l.startswith("Generated by")), "")
    path = os.path.join(ROOT, "README.md")
    with open(path) as f:
        readme = f.read()
    if README_BEGIN not in readme or README_END not in readme:
        return
    head, rest = readme.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    block = "\n".join([README_BEGIN, when, "", *table, README_END])
    with open(path, "w") as f:
        f.write(head + block + tail)
    log("updated the targets table in README.md")


if __name__ == "__main__":
    main()
