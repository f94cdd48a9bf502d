"""bench.py's section `listfilter`: what the module's RPUSH/LPUSH command filter costs the commands it does not
turn into jobs. RPUSH onto a plain list and GET, redis-benchmark -c 50 -P 16, on a server without the module and on
one with it loaded and holding 1,000 queues (so the filter's lookup of the key's name is a real one); the two
servers run one after the other, never at once, the order alternating by round. Server µs/call from INFO
commandstats. For scale, one more row on the loaded server: RPUSH onto a queue's name, which the filter turns into
ONCE.RPUSH (a job per element).
"""
import shutil
import statistics
import subprocess

REDIS_BENCHMARK = shutil.which("redis-benchmark") or "/usr/bin/redis-benchmark"
PAYLOAD = "0123456789abcdef"
QUEUES = 1000

# (row, argv, the commandstats name that counts it)
COMMANDS = [("RPUSH", ["RPUSH", "plain-list", PAYLOAD], "rpush"), ("GET", ["GET", "plain-key"], "get")]
ONTO_QUEUE = ("RPUSH onto a queue (→ ONCE.RPUSH)", ["RPUSH", "q:0", PAYLOAD], "once.rpush")


def _stat(r, name):
    want = "cmdstat_" + name
    return next((v for k, v in r.info("commandstats").items() if k.lower() == want), {})


def _run(s, argv, stat, n):
    """One redis-benchmark run on a fresh key: (ops/s, server µs/call)."""
    if s.r.type(argv[1]) == "OnceQueue":
        s.r.execute_command("ONCE.PURGE", argv[1], "ready")      # the queue stays, empty
    else:
        s.r.delete(argv[1])
    if argv[0] == "GET":
        s.r.set(argv[1], PAYLOAD)
    s.r.config_resetstat()
    p = subprocess.run([REDIS_BENCHMARK, "-h", "127.0.0.1", "-p", str(s.port), "-c", "50", "-P", "16", "-n", str(n),
                        "--csv"] + argv, capture_output=True, text=True, timeout=300)
    rows = [line for line in p.stdout.splitlines() if line.startswith('"') and not line.startswith('"test"')]
    if p.returncode != 0 or not rows:
        raise RuntimeError(f"redis-benchmark {' '.join(argv[:2])} failed: {(p.stderr or p.stdout).strip()[-300:]}")
    cs = _stat(s.r, stat)
    if int(cs.get("calls", 0)) < n:
        raise RuntimeError(f"{argv[0]} {argv[1]}: commandstats {stat} shows {cs.get('calls', 0)} calls, expected {n}")
    return float(rows[-1].split('","')[1].strip('"')), float(cs["usec_per_call"])


def bench(cfg, make_server, log):
    n = 200_000 if cfg.quick else 1_000_000
    reps = 2 if cfg.quick else 5
    runs = {(side, name): [] for side in ("without", "loaded") for name, _, _ in COMMANDS}
    runs[("loaded", ONTO_QUEUE[0])] = []
    ratios = {name: [] for name, _, _ in COMMANDS}
    servers = {"without": make_server(module=False), "loaded": make_server(module=True)}
    try:
        loaded = servers["loaded"].r
        pipe = loaded.pipeline(transaction=False)
        for i in range(QUEUES):
            pipe.execute_command("ONCE.CONFIGURE", f"q:{i}", "RETRIES", 3)   # makes the queue's key
        pipe.execute()
        if loaded.type("q:0") != "OnceQueue":
            raise RuntimeError(f"q:0 is {loaded.type('q:0')!r}, not a queue")
        subprocess.run([REDIS_BENCHMARK, "-h", "127.0.0.1", "-p", str(servers["without"].port), "-c", "50", "-P",
                        "16", "-n", str(n // 4), "RPUSH", "warm", PAYLOAD], capture_output=True, timeout=120)
        for rep in range(reps):
            this = {}
            for side in (("without", "loaded") if rep % 2 == 0 else ("loaded", "without")):
                for name, argv, stat in COMMANDS:
                    rps, usec = _run(servers[side], argv, stat, n)
                    runs[(side, name)].append({"rps": rps, "usec": usec})
                    this[(side, name)] = rps
                    log(f"listfilter {name} {side} rep {rep + 1}: {rps:,.0f} ops/s, {usec:.3f} µs/call")
            for name, _, _ in COMMANDS:
                ratios[name].append(this[("loaded", name)] / this[("without", name)])
            rps, usec = _run(servers["loaded"], ONTO_QUEUE[1], ONTO_QUEUE[2], n)
            runs[("loaded", ONTO_QUEUE[0])].append({"rps": rps, "usec": usec})
            log(f"listfilter {ONTO_QUEUE[0]} rep {rep + 1}: {rps:,.0f} ops/s, {usec:.3f} µs/call")
    finally:
        for s in servers.values():
            s.close()
    median = {f"{side}|{name}": {"rps": statistics.median(x["rps"] for x in v),
                                 "usec": statistics.median(x["usec"] for x in v),
                                 "rps_all": [x["rps"] for x in v]} for (side, name), v in runs.items()}
    return {"n": n, "reps": reps, "queues": QUEUES, "median": median, "round_ratios": ratios,
            "ratio": {name: statistics.median(v) for name, v in ratios.items()}}


def target_row(res):
    """The row of the Targets table (reported, no target)."""
    if not isinstance(res, dict):
        return ("RPUSH and GET with the module loaded ÷ without", "not measured", "—")
    m = res["median"]
    parts = [f"{name} {res['ratio'][name]:.2f}× (server µs/call {m['loaded|' + name]['usec']:.3f} vs "
             f"{m['without|' + name]['usec']:.3f})" for name, _, _ in COMMANDS]
    return ("RPUSH and GET throughput, module loaded (its list filter) ÷ without (median of per-round ratios; "
            "no target, reported)", "; ".join(parts), "—")


def report(res):
    """The section's lines for results.md."""
    L = ["## RPUSH and GET with the module loaded vs without (section listfilter)", ""]
    if not isinstance(res, dict):
        return L + [f"Not measured: {res}", ""]
    L += [(f"redis-benchmark -c 50 -P 16 -n {res['n']:,}, RPUSH onto a plain list and GET of a 16-byte string, on "
           f"a server without the module and on one with it loaded holding {res['queues']:,} queues (every command "
           "passes the module's RPUSH/LPUSH filter, which looks the key's name up among the queues' names only for "
           f"RPUSH and LPUSH). {res['reps']} rounds, the servers one after the other, the order alternating; "
           "medians; µs/call from INFO commandstats (the time inside the command, not the filter's, which runs "
           "before it: the filter shows in ops/s)."), "",
          "| command | server | ops/s (median) | µs/call (median) | ops/s, every run |",
          "| --- | --- | ---: | ---: | --- |"]
    for key, v in res["median"].items():
        side, name = key.split("|", 1)
        L.append(f"| {name} | {'module loaded' if side == 'loaded' else 'no module'} | {v['rps']:,.0f} | "
                 f"{v['usec']:.3f} | {', '.join(f'{x:,.0f}' for x in v['rps_all'])} |")
    L += ["", "Loaded ÷ without per round: " + "; ".join(
        f"{name} {', '.join(f'{x:.2f}' for x in res['round_ratios'][name])} (median {res['ratio'][name]:.2f})"
        for name, _, _ in COMMANDS) + ".", ""]
    return L
