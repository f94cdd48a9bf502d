"""The worker in real deployments: a late ACK is told (RESERVE ... WITHACK), a Redis user without CLIENT ID /
CLIENT UNBLOCK rights can run it, and a server whose eviction policy can drop whole queues is warned about."""
import logging
import time
import uuid

import pytest
import redis

from once import Once, Worker
from once_helpers import running_worker, wait_until


def _has_withack(r):
    r.execute_command("ONCE.PUSH", "withack-probe", "x", "ID", "p")
    try:
        r.execute_command("ONCE.RESERVE", "withack-probe", "ACK", "p", "WITHACK")
        return True
    except redis.ResponseError as exc:
        if "WITHACK" not in str(exc).upper():
            raise
        return False
    finally:
        r.delete("withack-probe")


@pytest.fixture
def r(server):
    c = server.client()
    yield c
    c.close()


@pytest.fixture
def user(r):
    """A fresh ACL user name and its password; removed after the test."""
    name = f"u{uuid.uuid4().hex[:8]}"
    yield name, "pw-" + name
    r.execute_command("ACL", "DELUSER", name)


def test_ack_reserve_tells_the_ack_count(r, queue):
    if not _has_withack(r):
        pytest.skip("this module's RESERVE has no WITHACK yet")
    once = Once(r, queue)
    once.push("a", id="a")
    once.push("b", id="b")
    [a] = once.reserve(lease_ms=60000)
    acked, jobs = once.ack_reserve(a, lease_ms=60000)
    assert acked == 1 and [j.id for j in jobs] == ["b"]
    acked, jobs = once.ack_reserve(jobs[0], block_ms=100)           # nothing left: nil after the wait
    assert (acked, jobs) == (1, [])
    acked, jobs = once.ack_reserve("a", ack_attempt=1)              # already gone: refused
    assert (acked, jobs) == (0, [])


def test_late_ack_is_logged(r, queue, caplog):
    """A job whose lease runs out while its task runs (nobody extends it) is acked too late: the worker says so."""
    if not _has_withack(r):
        pytest.skip("this module's RESERVE has no WITHACK yet")
    once = Once(r, queue)
    once.push("slow", id="slow", retries=5, backoff_ms=1)
    seen = []

    def task(job):
        seen.append(job.attempt)
        if job.attempt == 1:
            wait_until(lambda: once.inspect("slow").state != "reserved", timeout=10,
                       what="the lease to run out and the job to go back")

    caplog.set_level(logging.WARNING, logger="once.worker")
    with running_worker(once, task, pass_job=True, lease_ms=300, extend_every_ms=600000, block_ms=500) as w:
        wait_until(lambda: once.stats().acked_total == 1, timeout=15, what="the retry to be acked")
    assert seen == [1, 2]
    assert w.summary.late_acks == 1 and w.summary.processed == 2
    late = [rec.getMessage() for rec in caplog.records if "ACK was refused" in rec.getMessage()]
    assert late == ["job slow (attempt 1) finished but its ACK was refused: its lease had run out, so the job went "
                    "back to the queue or to another worker and may run again"]


def test_worker_runs_without_client_id_rights(server, r, queue, user, caplog):
    name, pw = user
    r.execute_command("ACL", "SETUSER", name, "on", f">{pw}", "resetkeys", f"~{queue}", "-@all",
                      "+ONCE.RESERVE", "+ONCE.ACK", "+ONCE.NACK", "+ONCE.EXTEND", "+ONCE.STATS")
    for i in range(3):
        r.execute_command("ONCE.PUSH", queue, f"t{i}")
    wc = server.client(username=name, password=pw)
    with pytest.raises(redis.exceptions.NoPermissionError):
        wc.client_id()                                               # the trap is really there
    caplog.set_level(logging.DEBUG, logger="once.worker")
    got = []
    with running_worker(Once(wc, queue), got.append, block_ms=1000, monitor_handler=lambda s: None) as w:
        wait_until(lambda: len(got) == 3, what="3 jobs")
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 1000 / 1000 + 3                  # stopped within block_ms, not hung
    assert w.summary.processed == 3 and Once(r, queue).stats().acked_total == 3
    msgs = [rec.getMessage() for rec in caplog.records]
    assert any("CLIENT ID refused" in m for m in msgs)
    assert not [rec for rec in caplog.records if rec.levelno >= logging.WARNING], msgs   # no INFO: no warning
    wc.close()


def _eviction_fields(r):
    return "once_eviction_risk" in r.info("once") or "eviction_risk" in r.info("once")


def test_worker_warns_at_start_when_the_policy_can_evict_queues(r, queue, caplog):
    if not _eviction_fields(r):
        pytest.skip("this module's INFO once has no eviction fields yet")
    caplog.set_level(logging.WARNING, logger="once.worker")
    r.config_set("maxmemory-policy", "allkeys-lru")
    try:
        with running_worker(Once(r, queue), lambda d: None):
            pass
    finally:
        r.config_set("maxmemory-policy", "noeviction")
    lines = [rec.getMessage() for rec in caplog.records if "maxmemory-policy" in rec.getMessage()]
    assert lines == ["once: maxmemory-policy is allkeys-lru: the server may evict whole queues with every job in "
                     "them; set maxmemory-policy noeviction"]
    caplog.clear()
    with running_worker(Once(r, queue), lambda d: None):
        pass
    assert not [rec for rec in caplog.records if "maxmemory" in rec.getMessage()]
