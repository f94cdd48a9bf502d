"""Prometheus metrics of the Once queues in one Redis database (``once exporter``, and ``/metrics`` of ``once web``).

Every scrape reads the server afresh (SCAN ... TYPE OnceQueue, then ONCE.STATS and ONCE.HISTOGRAM per queue, and
INFO once), so the figures are the server's own at scrape time:

- ``once_jobs{queue,state}``                 gauge: jobs per state (ready, delayed, reserved, dead, the
  finished jobs a queue keeps: completed, cancelled, and waiting: jobs pushed with AFTER whose dependencies have
  not all completed)
- ``once_queue_paused{queue}``               gauge: 1 while the queue is paused (ONCE.PAUSE)
- ``once_queue_schedules{queue}``            gauge: cron schedules of the queue
- ``once_jobs_<x>_total{queue}``             counters: every ``<x>_total`` of ONCE.STATS (pushed, reserved, acked,
                                             nacked, expired, retried, dead, dead_dropped)
- ``once_job_wait_seconds{queue}``           histogram: ready -> reserved (ONCE.HISTOGRAM wait)
- ``once_job_run_seconds{queue}``            histogram: reserved -> ACK/NACK (ONCE.HISTOGRAM run)
- ``once_timer_*``, ``once_queues``, ``once_server_jobs{state}``: the server-wide figures of INFO once
- ``once_eviction_risk`` (gauge), ``once_evicted_queues_total``, ``once_evicted_jobs_total``,
  ``once_schedule_fires_held_total`` (counters): INFO once's eviction figures, where the module has them
- ``once_up``                                gauge: 1 when the last scrape reached the server

Queues this Redis user may not read (NOPERM) are left out; a user that may not run INFO gets no INFO figures.
"""
import argparse
import math
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry

from .errors import is_no_permission
from .server import has_command, info_once, queues, readable_stats
from .serving import serve_until_stopped
from .types import COUNT_FIELDS, LIST_STATES, Bucket, parse_histogram

HISTOGRAM_KINDS = (("wait", "Time jobs waited in ready before a worker reserved them."),
                   ("run", "Time from a reservation to its ACK or NACK."))


def _le(bound_ms: float) -> str:
    if math.isinf(bound_ms):
        return "+Inf"
    return repr(bound_ms / 1000.0)


def histogram_samples(buckets: List[Bucket], sum_ms: Optional[float]) -> Tuple[List[Tuple[str, float]], float]:
    """ONCE.HISTOGRAM's cumulative ``[(bound_ms, count)]`` as Prometheus buckets in seconds (``+Inf`` last) and
    the sum in seconds: the module's own sum when STATS gives one (``<kind>_sum_ms``), else an estimate from the
    buckets (each job counted at the middle of its bucket, a job in the last open bucket at its lower bound)."""
    out = [(_le(b), float(c)) for b, c in buckets]
    if not out or out[-1][0] != "+Inf":
        out.append(("+Inf", float(buckets[-1][1]) if buckets else 0.0))
    if sum_ms is None:
        est, prev_bound, prev_count = 0.0, 0.0, 0
        for bound, cum in buckets:
            n = cum - prev_count
            mid = prev_bound if math.isinf(bound) else (prev_bound + bound) / 2.0
            est += n * mid
            prev_bound, prev_count = (prev_bound if math.isinf(bound) else bound), cum
        sum_ms = est
    return out, float(sum_ms) / 1000.0


class OnceCollector:
    """A prometheus_client collector reading one Redis database's queues at every scrape."""

    def __init__(self, r: Any, match: Optional[str] = None):
        self.r = r
        self.match = match

    def describe(self) -> List[Metric]:  # the families vary with the server: no fixed description
        return []

    def collect(self) -> Iterator[Metric]:
        started = time.monotonic()
        up = GaugeMetricFamily("once_up", "1 if the last scrape of the Redis server succeeded, else 0.")
        try:
            families = list(self._collect())
        except Exception:  # noqa: BLE001 - a scrape reports the failure as once_up 0
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        yield from families
        d = GaugeMetricFamily("once_scrape_duration_seconds", "How long reading the server took.")
        d.add_metric([], time.monotonic() - started)
        yield d

    def _collect(self) -> Iterator[Metric]:
        stats, _ = readable_stats(self.r, queues(self.r, match=self.match))
        names = list(stats)
        hist_ok = has_command(self.r, "ONCE.HISTOGRAM")
        hists: Dict[Tuple[str, str], List[Tuple[float, int]]] = {}
        if hist_ok and names:
            pipe = self.r.pipeline(transaction=False)
            keys = [(n, kind) for n in names for kind, _ in HISTOGRAM_KINDS]
            for n, kind in keys:
                pipe.execute_command("ONCE.HISTOGRAM", n, kind)
            for key, reply in zip(keys, pipe.execute(raise_on_error=False)):
                if is_no_permission(reply):    # HISTOGRAM not granted with STATS: the queue has no histogram
                    continue
                if isinstance(reply, Exception):
                    raise reply
                hists[key] = parse_histogram(reply)

        jobs = GaugeMetricFamily("once_jobs", "Jobs in the queue, by state.", labels=["queue", "state"])
        paused = GaugeMetricFamily("once_queue_paused", "1 while the queue is paused (ONCE.PAUSE).",
                                   labels=["queue"])
        scheds = GaugeMetricFamily("once_queue_schedules", "Cron schedules of the queue.", labels=["queue"])
        counters: Dict[str, CounterMetricFamily] = {}
        for n, s in stats.items():
            for state in LIST_STATES:
                jobs.add_metric([n, state], float(s.get(state, 0) or 0))
            paused.add_metric([n], 1.0 if s.get("paused") else 0.0)
            scheds.add_metric([n], float(s.get("schedules", 0) or 0))
            for field, value in s.items():
                if not field.endswith("_total") or not isinstance(value, (int, float)):
                    continue
                base = field[: -len("_total")]
                name = f"once_jobs_{base}"
                if name not in counters:
                    counters[name] = CounterMetricFamily(
                        name, f"Jobs {base.replace('_', ' ')} since the queue was made (ONCE.STATS {field}).",
                        labels=["queue"])
                counters[name].add_metric([n], float(value))
        yield jobs
        yield paused
        yield scheds
        yield from counters.values()

        if hist_ok:
            for kind, help_text in HISTOGRAM_KINDS:
                h = HistogramMetricFamily(f"once_job_{kind}_seconds", help_text, labels=["queue"])
                for n in names:
                    if (n, kind) not in hists:
                        continue
                    buckets = hists[(n, kind)]
                    sum_ms = stats[n].get(f"{kind}_sum_ms")
                    samples, sum_s = histogram_samples(buckets, sum_ms if isinstance(sum_ms, (int, float)) else None)
                    h.add_metric([n], samples, sum_s)
                yield h

        yield from self._info()

    def _info(self) -> Iterator[Metric]:
        try:
            info = info_once(self.r)
        except redis.ResponseError as exc:
            if is_no_permission(exc):
                return
            raise

        def field(name: str) -> Any:                  # the eviction figures may come with or without the once_ prefix
            return info.get("once_" + name, info.get(name))

        def gauge(key: str, name: str, help_text: str, scale: float = 1.0) -> Optional[Metric]:
            if isinstance(info.get(key), (int, float)):
                g = GaugeMetricFamily(name, help_text)
                g.add_metric([], float(info[key]) * scale)
                return g
            return None

        def counter(key: str, name: str, help_text: str) -> Optional[Metric]:
            if isinstance(info.get(key), (int, float)):
                c = CounterMetricFamily(name, help_text)
                c.add_metric([], float(info[key]))
                return c
            return None

        out = [
            gauge("once_queues", "once_queues", "Queues on the server, over all databases (INFO once)."),
            gauge("once_timer_queues_waiting", "once_timer_queues_waiting",
                  "Queues with timed work (due jobs, leases, schedules) in the timer's index."),
            counter("once_timer_ticks", "once_timer_ticks", "Ticks of the module's timer (INFO once)."),
            gauge("once_timer_last_tick_us", "once_timer_last_tick_seconds",
                  "How long the timer's last tick took.", 1e-6),
            gauge("once_timer_max_tick_us", "once_timer_max_tick_seconds",
                  "The longest timer tick since the server started.", 1e-6),
        ]
        for key in ("eviction_risk", "evicted_queues", "evicted_jobs", "schedule_fires_held"):
            info.setdefault("once_" + key, field(key))
        out += [
            gauge("once_eviction_risk", "once_eviction_risk",
                  "1 when maxmemory-policy is an allkeys-* policy, which can evict whole queues."),
            counter("once_evicted_queues", "once_evicted_queues",
                    "Queue keys the server evicted since it started, with every job in them."),
            counter("once_evicted_jobs", "once_evicted_jobs", "Jobs in the evicted queues."),
            counter("once_schedule_fires_held", "once_schedule_fires_held",
                    "Schedule fires held back while the server was over maxmemory under noeviction."),
        ]
        server_jobs = GaugeMetricFamily("once_server_jobs", "Jobs by state over every queue of the server "
                                        "(INFO once, all databases).", labels=["state"])
        any_jobs = False
        for state in COUNT_FIELDS:
            v = info.get(f"once_jobs_{state}")
            if isinstance(v, (int, float)):
                server_jobs.add_metric([state], float(v))
                any_jobs = True
        for f in out:
            if f is not None:
                yield f
        if any_jobs:
            yield server_jobs


def registry_for(r: Any, match: Optional[str] = None) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(OnceCollector(r, match))
    return reg


def serve(r: Any, args: argparse.Namespace) -> int:
    """``once exporter``: serves /metrics until interrupted."""
    from prometheus_client import start_http_server

    reg = registry_for(r, getattr(args, "match", None))
    server, thread = start_http_server(args.port, addr=args.host, registry=reg)
    print(f"once exporter: serving http://{args.host}:{server.server_port}/metrics", flush=True)
    serve_until_stopped(server, 1.0)
    return 0
