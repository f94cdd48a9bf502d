"""The worker's prefetch: up to n jobs per RESERVE, the finished ones acknowledged together (ACKS, fenced, WITHACK)
in the next ack-and-fetch, leases kept alive for the jobs that wait their turn, refused ACKs logged."""
import collections
import logging
import threading
import time

import pytest

from once import Once
from once_helpers import command_calls, running_worker, wait_until


def push_noops(once, n):
    pipe = once.redis.pipeline(transaction=False)
    for i in range(n):
        pipe.execute_command("ONCE.PUSH", once.queue, f"job-{i}")
    return [i.decode() for i in pipe.execute()]


def test_two_thousand_noop_jobs_drain_exactly_once_with_prefetch_10(once):
    ids = push_noops(once, 2000)
    seen = collections.Counter()
    lock = threading.Lock()

    def execute(job):
        with lock:
            seen[job.id] += 1

    with running_worker(once, execute, pass_job=True, prefetch=10, concurrency=2) as w:
        wait_until(lambda: sum(seen.values()) >= 2000, timeout=60, what="2,000 jobs")
        wait_until(lambda: once.stats().acked_total == 2000, timeout=10, what="2,000 ACKs")
    assert sorted(seen) == sorted(ids) and set(seen.values()) == {1}
    s = once.stats()
    assert (s.ready, s.reserved, s.dead, s.reserved_total) == (0, 0, 0, 2000)
    assert w.summary.processed == 2000 and w.summary.late_acks == 0


def test_prefetch_takes_a_batch_per_round_trip(rclient, ronce):
    # Redis only: Valkey's commandstats counts a served blocked command twice
    push_noops(ronce, 500)
    before = command_calls(rclient, "once.reserve")
    with running_worker(ronce, lambda data: None, prefetch=10):
        wait_until(lambda: ronce.stats().acked_total == 500, timeout=30, what="500 ACKs")
    reserves = command_calls(rclient, "once.reserve") - before
    assert 50 <= reserves <= 60, reserves           # 50 batches of 10, and a blocked RESERVE or so at the end
    assert command_calls(rclient, "once.ack") <= 1  # finished jobs rode on the RESERVEs (ACKS), save the last


def test_refused_acks_of_a_batch_are_logged(once, caplog):
    first = once.push("first", retries=0)
    once.push("second")
    once.push("third")
    started = threading.Event()
    release = threading.Event()

    def execute(data):
        if data == "first":
            started.set()
            release.wait(10)

    with caplog.at_level(logging.WARNING, logger="once.worker"):
        with running_worker(once, execute, prefetch=3, extend_every_ms=60000) as w:
            assert started.wait(5)
            assert once.nack(first, attempt=1, error="taken away")     # its reservation ends under the worker
            release.set()
            wait_until(lambda: w.summary.processed == 3, what="the batch to run")
            wait_until(lambda: once.stats().acked_total == 2, what="the other two ACKs")
            wait_until(lambda: w.summary.late_acks == 1, what="the refused ACK to be counted")
    refused = [rec.getMessage() for rec in caplog.records if "ACK was refused" in rec.getMessage()]
    assert len(refused) == 1 and refused[0].startswith(f"1 of 3 jobs acknowledged together ({first} (attempt 1), ")
    assert once.inspect(first).state == "dead"


def test_prefetched_jobs_keep_their_leases_while_they_wait(once):
    once.push("slow")
    once.push("waits")
    done = []
    with running_worker(once, lambda data: (time.sleep(1.5 if data == "slow" else 0), done.append(data)),
                        prefetch=2, lease_ms=500, extend_every_ms=100):
        wait_until(lambda: done == ["slow", "waits"], timeout=10, what="both jobs")
        wait_until(lambda: once.stats().acked_total == 2, what="both ACKs")
    s = once.stats()
    assert (s.expired_total, s.reserved_total) == (0, 2)


def test_stop_finishes_the_prefetched_jobs_in_hand(once):
    for i in range(4):
        once.push(f"j{i}")
    started = threading.Event()
    done = []

    def execute(data):
        started.set()
        time.sleep(0.2)
        done.append(data)

    with running_worker(once, execute, prefetch=4) as w:
        assert started.wait(5)
        w.stop()
    assert done == ["j0", "j1", "j2", "j3"]
    s = once.stats()
    assert (s.acked_total, s.reserved) == (4, 0)


@pytest.mark.parametrize("prefetch", [0, 10001])
def test_prefetch_out_of_range_is_refused(ronce, prefetch):
    with pytest.raises(ValueError, match="prefetch must be between 1 and 10000"):
        Once(ronce.redis, ronce.queue).worker(lambda d: None, prefetch=prefetch)
