"""Prometheus metrics: `once exporter` alone and `/metrics` of `once web`, parsed with prometheus_client's own text
parser: every family present with its type, and values equal to what ONCE.STATS, ONCE.HISTOGRAM and INFO once
reply on the server at that moment (a quiet workload: long leases and delays, so nothing moves during the scrape).
"""
import math

import pytest

from once_helpers import Served, make_dead, need, url_of
from once.admin import Admin, info_once

parser = pytest.importorskip("prometheus_client.parser", reason="prometheus_client is not installed")


def families(text):
    return {f.name: f for f in parser.text_string_to_metric_families(text)}


def samples(fam, name=None, **labels):
    return [s for s in fam.samples if (name is None or s.name == name)
            and all(s.labels.get(k) == v for k, v in labels.items())]


def value(fam, name=None, **labels):
    got = samples(fam, name, **labels)
    assert len(got) == 1, (fam.name, name, labels, fam.samples)
    return got[0].value


@pytest.fixture(scope="module")
def r(server):
    c = server.client()
    yield c
    c.close()


def seed(r, q):
    """A known state: 3 ready, 1 delayed, 1 reserved, 2 dead, one schedule; 3 acked jobs, run through ACK, one of
    them kept (completed)."""
    for i in range(3):
        r.execute_command("ONCE.PUSH", q, f"acked {i}", *(("KEEP", 3_600_000) if i == 0 else ()))
    got = r.execute_command("ONCE.RESERVE", q, "COUNT", 3, "LEASE", 600000)
    r.execute_command("ONCE.ACK", q, *[j[0] for j in got])
    for i in range(3):
        r.execute_command("ONCE.PUSH", q, f"ready {i}")
    r.execute_command("ONCE.PUSH", q, "later", "DELAY", 3_600_000)
    make_dead(r, q, error="e1")
    make_dead(r, q, error="e2")
    r.execute_command("ONCE.PUSH", q, "held", "PRIORITY", 1000000)
    r.execute_command("ONCE.RESERVE", q, "LEASE", 600000)
    r.execute_command("ONCE.SCHEDULE", q, "hourly", "@every 1h", "tick")


def check_metrics(r, text, queues):
    fams = families(text)
    assert fams["once_up"].type == "gauge" and value(fams["once_up"]) == 1.0
    for f, t in (("once_jobs", "gauge"), ("once_queue_paused", "gauge"), ("once_queue_schedules", "gauge"),
                 ("once_jobs_pushed", "counter"), ("once_jobs_reserved", "counter"), ("once_jobs_acked", "counter"),
                 ("once_jobs_nacked", "counter"), ("once_jobs_expired", "counter"), ("once_jobs_retried", "counter"),
                 ("once_jobs_dead", "counter"), ("once_timer_ticks", "counter"), ("once_timer_last_tick_seconds",
                                                                                 "gauge"),
                 ("once_timer_max_tick_seconds", "gauge"), ("once_queues", "gauge"), ("once_server_jobs", "gauge")):
        assert f in fams, f"family {f} missing from:\n{text}"
        assert fams[f].type == t, (f, fams[f].type)
    for q in queues:
        s = Admin(r, q).stats()
        for state in ("ready", "delayed", "reserved", "dead", "completed", "cancelled"):
            assert value(fams["once_jobs"], queue=q, state=state) == s[state], (q, state)
        assert value(fams["once_queue_paused"], queue=q) == (1.0 if s.get("paused") else 0.0)
        assert value(fams["once_queue_schedules"], queue=q) == s["schedules"]
        for field, v in s.items():
            if field.endswith("_total"):
                fam = fams[f"once_jobs_{field[:-6]}"]
                assert value(fam, f"once_jobs_{field}", queue=q) == v, field
    info = info_once(r)
    assert value(fams["once_queues"]) == info["once_queues"]
    assert value(fams["once_timer_max_tick_seconds"]) == pytest.approx(info["once_timer_max_tick_us"] / 1e6)
    assert value(fams["once_timer_ticks"], "once_timer_ticks_total") <= info["once_timer_ticks"]
    for state in ("ready", "delayed", "reserved", "dead"):
        assert value(fams["once_server_jobs"], state=state) == info[f"once_jobs_{state}"]
    for kind in ("wait", "run"):
        fam = fams[f"once_job_{kind}_seconds"]
        assert fam.type == "histogram"
        for q in queues:
            want = Admin(r, q).histogram(kind)
            got = samples(fam, f"once_job_{kind}_seconds_bucket", queue=q)
            les = [float(s.labels["le"]) for s in got]
            assert les == sorted(les) and math.isinf(les[-1])
            by_le = {float(s.labels["le"]): s.value for s in got}
            for bound, count in want:
                assert by_le[bound / 1000.0 if not math.isinf(bound) else math.inf] == count
            total = want[-1][1] if want else 0
            assert value(fam, f"once_job_{kind}_seconds_count", queue=q) == total
            assert value(fam, f"once_job_{kind}_seconds_sum", queue=q) >= 0
    return fams


def test_exporter_families_match_stats(server, r, queue):
    q2 = queue + ":other"
    seed(r, queue)
    r.execute_command("ONCE.PUSH", q2, "x")
    r.execute_command("ONCE.PAUSE", q2)
    e = Served(url_of(server), "exporter", "--port", 0, "--match", queue + "*")
    try:
        status, text, headers = e.get("/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        fams = check_metrics(r, text, [queue, q2])
        assert value(fams["once_jobs"], queue=queue, state="ready") == 3
        assert value(fams["once_jobs"], queue=queue, state="dead") == 2
        assert value(fams["once_jobs_acked"], "once_jobs_acked_total", queue=queue) == 3
        assert value(fams["once_queue_paused"], queue=q2) == 1.0
        # 3 acked + 2 dead + 1 held = 6 reservations waited; 3 acks + 2 nacks ran
        assert value(fams["once_job_wait_seconds"], "once_job_wait_seconds_count", queue=queue) == 6
        assert value(fams["once_job_run_seconds"], "once_job_run_seconds_count", queue=queue) == 5
        # every scrape reads afresh
        r.execute_command("ONCE.PUSH", queue, "one more")
        fams = families(e.get("/metrics")[1])
        assert value(fams["once_jobs"], queue=queue, state="ready") == 4
        assert value(fams["once_jobs_pushed"], "once_jobs_pushed_total", queue=queue) == \
            Admin(r, queue).stats()["pushed_total"]
    finally:
        e.close()


def test_histograms_after_a_known_workload(server, r, queue):
    need(r, "ONCE.HISTOGRAM")
    import time
    for i in range(4):
        r.execute_command("ONCE.PUSH", queue, f"w{i}")
    time.sleep(0.3)                                   # every job waits >= 300 ms in ready
    got = r.execute_command("ONCE.RESERVE", queue, "COUNT", 4, "LEASE", 600000)
    r.execute_command("ONCE.ACK", queue, *[j[0] for j in got])
    e = Served(url_of(server), "exporter", "--port", 0, "--match", queue)
    try:
        fams = check_metrics(r, e.get("/metrics")[1], [queue])
        wait = fams["once_job_wait_seconds"]
        assert value(wait, "once_job_wait_seconds_count", queue=queue) == 4
        below = [s for s in samples(wait, "once_job_wait_seconds_bucket", queue=queue)
                 if float(s.labels["le"]) < 0.25]
        assert all(s.value == 0 for s in below), below  # none waited less than 250 ms
        assert value(wait, "once_job_wait_seconds_sum", queue=queue) >= 4 * 0.25
        # _sum is the module's exact sum (STATS wait_sum_ms / run_sum_ms), not an estimate from the buckets
        st = Admin(r, queue).stats()
        assert value(wait, "once_job_wait_seconds_sum", queue=queue) == pytest.approx(st["wait_sum_ms"] / 1000.0)
        run = fams["once_job_run_seconds"]
        assert value(run, "once_job_run_seconds_count", queue=queue) == 4
        assert value(run, "once_job_run_seconds_sum", queue=queue) == pytest.approx(st["run_sum_ms"] / 1000.0)
    finally:
        e.close()


def test_exporter_reports_down_when_the_server_is_gone(kind, queue):
    import harness
    s = harness.Server(kind)
    try:
        c = s.client()
        c.execute_command("ONCE.PUSH", queue, "x")
        e = Served(url_of(s), "exporter", "--port", 0)
        try:
            fams = families(e.get("/metrics")[1])
            assert value(fams["once_up"]) == 1.0 and value(fams["once_jobs"], queue=queue, state="ready") == 1
            s.stop(kill=True)
            status, text, _ = e.get("/metrics")
            assert status == 200
            fams = families(text)
            assert value(fams["once_up"]) == 0.0 and "once_jobs" not in fams
        finally:
            e.close()
    finally:
        s.close()


def test_dashboard_metrics_endpoint(server, r, queue):
    seed(r, queue)
    w = Served(url_of(server), "web", "--port", 0, "--read-only", "--match", queue + "*")
    try:
        status, text, headers = w.get("/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        check_metrics(r, text, [queue])
    finally:
        w.close()
