#!/usr/bin/env python3
"""The chaos suite's runner: every scenario of a profile on every server kind, one line per run.

    python3 tests/chaos/run.py [--profile short|full] [--kind redis|valkey] [--only SUBSTRING]

A run: a deployment (topologies.py) with AOF on every node; producers and workers of checker.Workload on two
queues, and a backlog queue that only the final drain reads; the scenario's faults (faults.py) while they run;
then the deployment is healed, the workload stopped, the queues drained and checked (checker.py), and every
replica's digest and its own AOF's are compared with the master's. Prints `topology=... faults=[...]
acknowledged=N completed=N lost=N duplicated=N ...` per run and exits
1 when any run lost an acknowledged job or failed another check. Uses $ONCE_MODULE (see tests/harness.py).
"""
import argparse
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import topologies  # noqa: E402  (puts tests/ and tests/integration on sys.path)
import faults  # noqa: E402
import harness  # noqa: E402
from checker import Result, Workload  # noqa: E402

QUEUES = ["chaos:a", "chaos:b"]
BACKLOG = ["chaos:backlog"]       # pushed to all along, read only by the drain at the end


class Scenario:
    def __init__(self, name, make, steps, profiles):
        self.name, self.make, self.steps, self.profiles = name, make, steps, profiles


def scenarios():
    MR, SG = topologies.MasterReplica, topologies.SentinelGroup
    kill = faults.kill_promote_restart_rejoin
    stop_pause_failover = [faults.sigstop_master, faults.client_pause_write, faults.failover]
    return [
        Scenario("mr-everysec-kill", lambda k: MR(k, "everysec"), [kill], {"short", "full"}),
        Scenario("mr-always-kill", lambda k: MR(k, "always"), [kill, kill], {"full"}),
        Scenario("mr-always-power-loss", lambda k: MR(k, "always"), [faults.power_loss], {"short", "full"}),
        Scenario("mr-always-crash", lambda k: MR(k, "always"),
                 [faults.kill_promote_crash_rejoin, faults.power_loss, faults.kill_promote_crash_rejoin], {"full"}),
        Scenario("mr-everysec-kill-twice", lambda k: MR(k, "everysec"), [kill, kill], {"full"}),
        Scenario("mr-always-stop-pause-failover", lambda k: MR(k, "always"), stop_pause_failover, {"short", "full"}),
        Scenario("mr-everysec-stop-pause-failover", lambda k: MR(k, "everysec"), stop_pause_failover + [
            faults.failover], {"full"}),
        Scenario("sentinel-kill-restart", lambda k: SG(k, "everysec"),
                 [faults.sentinel_kill_master, faults.restart_master], {"short", "full"}),
        Scenario("sentinel-kill-stop", lambda k: SG(k, "always"),
                 [faults.sentinel_kill_master, faults.sentinel_sigstop_master], {"full"}),
    ]


PROFILES = {
    # seconds of workload before the first fault, between fault steps, and after the last one
    "short": dict(warm=1.0, pause=0.8, cool=0.8, lease_ms=700),
    "full": dict(warm=3.0, pause=2.0, cool=2.0, lease_ms=1000),
}


def run_one(scenario, kind, profile="short", out=sys.stdout):
    """Runs one scenario on one server kind; returns its Result (result.ok says whether it passed)."""
    p = PROFILES[profile]
    started = time.monotonic()
    topo = wl = None
    res = Result(topology=f"{scenario.name}/{kind}")
    try:
        topo = scenario.make(kind)
        res.topology = f"{scenario.name}:{topo.name}"
        wl = Workload(topo.factory, QUEUES, lease_ms=p["lease_ms"], backlog_queues=BACKLOG, schedule_every_ms=200)
        wl.start()
        time.sleep(p["warm"])
        for step in scenario.steps:
            step(topo, wl, p["pause"])
        time.sleep(p["cool"])
        wl.stop()
        topo.heal()
        wl.drain(topo.factory)
        res = wl.check(topo.factory)
        res.topology = f"{scenario.name}:{topo.name}"
        topo.compare(res)
    except Exception as exc:  # noqa: BLE001 - a run that could not finish is a failed run, with its reason
        res.failures.append(f"run error: {exc!r}")
        traceback.print_exc(file=sys.stderr)
        if wl is not None:
            res.faults = list(wl.faults)
    finally:
        if wl is not None:
            wl.stop(timeout=15)
        if topo is not None:
            topo.close()
    res.extra["seconds"] = round(time.monotonic() - started, 1)
    print(res.line(), file=out, flush=True)
    if not res.ok:
        print(res.details(), file=out, flush=True)
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", choices=sorted(PROFILES), default="short")
    ap.add_argument("--kind", choices=["redis", "valkey"], action="append")
    ap.add_argument("--only", help="run the scenarios whose name contains this")
    args = ap.parse_args(argv)
    if not os.path.exists(harness.MODULE):
        print(f"module not built: {harness.MODULE}", file=sys.stderr)
        return 2
    kinds = args.kind or harness.kinds()
    results = []
    for sc in scenarios():
        if args.profile not in sc.profiles or (args.only and args.only not in sc.name):
            continue
        for kind in kinds:
            results.append(run_one(sc, kind, args.profile))
    bad = [r for r in results if not r.ok]
    print(f"chaos {args.profile}: {len(results)} runs, {len(bad)} failed, "
          f"acknowledged {sum(r.acknowledged for r in results)}, lost {sum(len(r.lost) for r in results)}, "
          f"duplicated {sum(r.duplicated for r in results)}", flush=True)
    return 1 if bad or not results else 0


if __name__ == "__main__":
    sys.exit(main())
