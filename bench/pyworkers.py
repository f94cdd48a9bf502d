"""bench.py's section `pyworkers`: Python workers against the raw commands they send, 20,000 no-op jobs each.

Four processes drain the same queue in every row: (a) a raw loop of `ONCE.RESERVE q COUNT 10 BLOCK 1000 ACKS n id
attempt ... WITHACK` on redis-py, the bound for a Python worker's own overhead; (b) `once.Worker` with its defaults;
(c) `once.Worker` with prefetch 10; (d) `once.aio.Worker` with concurrency 20 (prefetch: the handlers free). The
workers start on the empty queue and wait on the server; then ONCE.BULK (in one MULTI) adds the jobs, and the clock runs until
ONCE.STATS counts them all acked. Server CPU per job from /proc (user+system) and from INFO commandstats (the time
inside the commands), both as deltas over the drain.
"""
import json
import os
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "clients", "python")
JOBS = 20_000
PROCS = 4

RAW = """
import sys, redis
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]))
q, done = sys.argv[2], []
while True:
    pairs = [x for j in done for x in (j[0], j[2])]
    acks = ["ACKS", len(done), *pairs] if done else []
    acked, jobs = r.execute_command("ONCE.RESERVE", q, "COUNT", 10, "BLOCK", 1000, "LEASE", 30000, *acks, "WITHACK")
    done = list(jobs or [])
"""

SYNC = """
import json, sys, redis
from once import Once
Once(redis.Redis(host="127.0.0.1", port=int(sys.argv[1])), sys.argv[2]).worker(lambda data: None, **json.loads(sys.argv[3]))
"""

ASYNC = """
import asyncio, json, sys, redis.asyncio
from once.aio import Once
async def noop(data):
    pass
asyncio.run(Once(redis.asyncio.Redis(host="127.0.0.1", port=int(sys.argv[1])), sys.argv[2]).worker(
    noop, **json.loads(sys.argv[3])))
"""

ROWS = [
    ("raw", "(a) raw RESERVE COUNT 10 + ACKS of 10 (redis-py loop)", RAW, {}),
    ("sync", "(b) once.Worker, defaults", SYNC, {}),
    ("sync-prefetch", "(c) once.Worker, prefetch=10", SYNC, {"prefetch": 10}),
    ("async", "(d) once.aio.Worker, concurrency=20 (prefetch: the free handlers)", ASYNC, {"concurrency": 20}),
]


def _once_usec(info):
    """Microseconds the server spent inside ONCE.* commands so far (INFO commandstats)."""
    return sum(int(v["usec"]) for k, v in info.items() if k.lower().startswith("cmdstat_once."))


def _drain(s, script, options, log):
    q = f"pw:{time.time_ns()}"
    env = dict(os.environ, PYTHONPATH=PACKAGE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    procs = [subprocess.Popen([sys.executable, "-c", script, str(s.port), q, json.dumps(options)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(PROCS)]
    try:
        deadline = time.time() + 30
        while sum("b" in c["flags"] for c in s.r.client_list()) < PROCS:
            dead = [p for p in procs if p.poll() is not None]
            if dead or time.time() > deadline:
                err = dead[0].stderr.read().decode(errors="replace")[-400:] if dead else "timeout"
                raise RuntimeError(f"the workers did not start: {err}")
            time.sleep(0.05)
        ticks0, usec0 = s.cpu_ticks(), _once_usec(s.info("commandstats"))
        t0 = time.perf_counter()
        pipe = s.r.pipeline(transaction=True)          # BULK takes 10,000 per call; MULTI: all at once
        for _ in range(0, JOBS, 10_000):
            pipe.execute_command("ONCE.BULK", q, "PAYLOADS", *(["x"] * 10_000))
        pipe.execute()
        while True:
            st = s.r.execute_command("ONCE.STATS", q)
            st = st if isinstance(st, dict) else dict(zip(st[::2], st[1::2]))
            if int(st["acked_total"]) >= JOBS:
                break
            if time.perf_counter() - t0 > 300:
                raise RuntimeError(f"drain stuck at {st['acked_total']} acked")
            time.sleep(0.005)
        secs = time.perf_counter() - t0
        ticks, usec = s.cpu_ticks() - ticks0, _once_usec(s.info("commandstats")) - usec0
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
    hz = os.sysconf("SC_CLK_TCK")
    res = {"jobs_s": JOBS / secs, "cpu_us_job": ticks / hz * 1e6 / JOBS, "cmd_us_job": usec / JOBS,
           "dead": int(st["dead"]), "reserved_total": int(st["reserved_total"])}
    log(f"pyworkers: {res['jobs_s']:,.0f} jobs/s, server {res['cpu_us_job']:.1f} µs CPU/job "
        f"({res['cmd_us_job']:.1f} µs in commands)")
    return res


def _has_sync_prefetch():
    sys.path.insert(0, PACKAGE)
    import inspect

    from once import Worker
    return "prefetch" in inspect.signature(Worker).parameters


def bench(cfg, make_server, log):
    reps = 1 if cfg.quick else 3
    s = make_server(module=True)
    out = {"jobs": JOBS, "procs": PROCS, "rows": {}}
    try:
        for key, label, script, options in ROWS:
            if key == "sync-prefetch" and not _has_sync_prefetch():
                out["rows"][key] = {"label": label, "missing": "once.Worker has no prefetch option yet"}
                continue
            runs = []
            for rep in range(reps):
                log(f"pyworkers {key} rep {rep + 1}")
                runs.append(_drain(s, script, options, log))
            out["rows"][key] = {"label": label, **{k: statistics.median(r[k] for r in runs)
                                                   for k in ("jobs_s", "cpu_us_job", "cmd_us_job")}}
    finally:
        s.close()
    return out


def targets(res):
    """Rows for the targets table: each prefetching worker's rate ÷ the raw batched commands' (must be ≥ 0.5)."""
    if not isinstance(res, dict) or "jobs_s" not in res["rows"].get("raw", {}):
        return [("Python workers with prefetch within 2× of the raw batched commands", "not measured", "—")]
    raw = res["rows"]["raw"]["jobs_s"]
    out = []
    for key, name in (("sync-prefetch", "once.Worker prefetch=10"), ("async", "once.aio.Worker concurrency=20")):
        row = res["rows"].get(key, {})
        if "jobs_s" in row:
            ratio = row["jobs_s"] / raw
            target = f"{name} ≥ 0.5× the raw RESERVE COUNT 10 + ACKS loop ({PROCS} processes, {JOBS:,} no-op jobs)"
            out.append((target, f"{ratio:.2f}× ({row['jobs_s']:,.0f} vs {raw:,.0f} jobs/s)",
                        "PASS" if ratio >= 0.5 else "MISS"))
        else:
            out.append((f"{name} ≥ 0.5× the raw batched commands", row.get("missing", "not measured"), "—"))
    return out


def report(res):
    """The section's lines for results.md."""
    L = ["## Python workers vs the raw commands (section pyworkers)", ""]
    if not isinstance(res, dict):
        return L + [f"Not measured: {res}", ""]
    L += [(f"{res['procs']} processes drain {res['jobs']:,} no-op jobs pushed at once (ONCE.BULK in a MULTI) while "
           "they wait; median of the runs. Server CPU: the redis-server process (user+system, /proc) and the time "
           "inside ONCE.* commands (INFO commandstats), per job."), "",
          "| workers | jobs/s | server CPU µs/job | in ONCE.* commands µs/job |", "| --- | ---: | ---: | ---: |"]
    for row in res["rows"].values():
        if "jobs_s" in row:
            L.append(f"| {row['label']} | {row['jobs_s']:,.0f} | {row['cpu_us_job']:.1f} | {row['cmd_us_job']:.1f} |")
        else:
            L.append(f"| {row['label']} | {row['missing']} | | |")
    return L + [""]
