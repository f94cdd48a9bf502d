"""Several queues in strict priority order: `Once(r, ['urgent', 'tasks'])` reserves with RESERVE ... ALSO, each job
says its queue, and its ACK, NACK and EXTEND go to that queue (the worker's and the client's)."""
import threading
import time

import pytest

from once import Once
from once_helpers import running_worker, wait_until


@pytest.fixture
def three(client, queue):
    """Three queue names that share a hash tag (one slot, as a cluster needs)."""
    return [f"{{{queue}}}:{name}" for name in ("urgent", "normal", "later")]


def test_reserve_serves_the_queues_in_the_order_named(client, three):
    for q in reversed(three):
        Once(client, q).push(f"from {q}")
    o = Once(client, three, decode=True)
    assert o.queue == three[0] and o.queues == tuple(three)
    jobs = o.reserve(2)
    assert [(j.queue, j.payload) for j in jobs] == [(three[0], f"from {three[0]}"), (three[1], f"from {three[1]}")]
    assert o.ack(*jobs) == 2                                      # each ACK fenced, on its own queue
    assert [Once(client, q).stats().acked_total for q in three] == [1, 1, 0]
    last = o.reserve(1)[0]
    assert last.queue == three[2]
    assert o.extend(last, 60000) is not None                      # EXTEND and NACK on the job's own queue
    assert o.nack(last, error="no", dead=True)
    assert Once(client, three[2]).stats().dead == 1


def test_ack_and_fetch_acknowledges_each_queues_jobs_on_that_queue(client, three):
    for q in three:
        Once(client, q).push("a")
        Once(client, q).push("b")
    o = Once(client, three)
    jobs = o.reserve(6)
    assert [j.queue for j in jobs] == [three[0]] * 2 + [three[1]] * 2 + [three[2]] * 2
    acked, more = o.ack_reserve(jobs, 1)
    assert (acked, more) == (6, [])
    assert [Once(client, q).stats().acked_total for q in three] == [2, 2, 2]
    acked, _ = o.ack_reserve(jobs[:3], 1)                         # acknowledged already: refused, counted 0
    assert acked == 0


def test_a_blocked_reserve_wakes_for_a_push_to_the_last_queue(client, three):
    o = Once(client, three)
    pusher = threading.Timer(0.3, lambda: Once(client, three[2]).push("late"))
    pusher.start()
    t0 = time.monotonic()
    jobs = o.reserve(1, block_ms=5000)
    pusher.join()
    assert time.monotonic() - t0 < 4 and [j.queue for j in jobs] == [three[2]]


def test_queue_names_must_be_given_once_and_not_empty(client):
    for bad in ([], ["a", ""], ["a", "a"]):
        with pytest.raises(ValueError):
            Once(client, bad)


def test_worker_takes_the_first_queue_first_and_sees_each_jobs_queue(client, queue):
    urgent, normal, later = (f"{{{queue}}}:{n}" for n in ("urgent", "normal", "later"))
    for i in range(3):
        Once(client, later).push(f"later-{i}")
        Once(client, normal).push(f"normal-{i}")
        Once(client, urgent).push(f"urgent-{i}")
    seen = []
    with running_worker(Once(client, [urgent, normal, later]), lambda job: seen.append((job.queue, job.payload)),
                        pass_job=True, prefetch=2):
        wait_until(lambda: len(seen) == 9, what="nine jobs")
        wait_until(lambda: Once(client, later).stats().acked_total == 3, what="the last ACKs")
    assert seen == [(q, f"{name}-{i}") for q, name in ((urgent, "urgent"), (normal, "normal"), (later, "later"))
                    for i in range(3)]
    assert [Once(client, q).stats().acked_total for q in (urgent, normal, later)] == [3, 3, 3]


def test_worker_nacks_and_extends_on_the_jobs_own_queue(client, queue):
    urgent, normal = f"{{{queue}}}:urgent", f"{{{queue}}}:normal"
    Once(client, normal).push("fails", retries=0)
    Once(client, normal).push("slow")

    def execute(job):
        if job.payload == "fails":
            raise RuntimeError("boom")
        time.sleep(1.2)

    with running_worker(Once(client, [urgent, normal]), execute, pass_job=True, lease_ms=400,
                        extend_every_ms=100):
        wait_until(lambda: Once(client, normal).stats().acked_total == 1, timeout=10, what="the slow job's ACK")
    s = Once(client, normal).stats()
    assert (s.dead, s.expired_total, s.nacked_total) == (1, 0, 1)
    assert Once(client, urgent).stats().nacked_total == 0
