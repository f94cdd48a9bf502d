"""The seed's two scripts run together as written: a producer that does `redis_client.rpush('tasks', data)` once a
second (examples/list_producer.py) and the consumer `Once(redis_client, 'tasks').worker(...)`
(examples/task_consumer.py), in both start orders; every task is processed exactly once. The worker adopts a list
made before it (ONCE.ADOPT), and the module turns later RPUSHes into jobs."""
import collections
import logging
import os
import time

import pytest

from once import Once, Worker, WrongTypeError
from once_helpers import REPO_ROOT, Proc, running_worker, wait_until

PRODUCER = os.path.join(REPO_ROOT, "examples", "list_producer.py")
CONSUMER = os.path.join(REPO_ROOT, "examples", "task_consumer.py")


@pytest.fixture
def r(server):
    c = server.client()
    yield c
    c.close()


@pytest.fixture
def tasks(r):
    """The seed's queue name, 'tasks', missing before and after the test."""
    r.delete("tasks")
    yield "tasks"
    r.delete("tasks")


def lines_after(output, prefix):
    return [ln[len(prefix):] for ln in output.splitlines() if ln.startswith(prefix)]


@pytest.mark.parametrize("producer_first", [True, False], ids=["producer-first", "consumer-first"])
def test_the_seed_scripts_as_written_in_either_start_order(server, r, tasks, producer_first):
    args = ["127.0.0.1", str(server.port)]
    first, second = (PRODUCER, CONSUMER) if producer_first else (CONSUMER, PRODUCER)
    a, b = Proc([first] + args), None
    try:
        if producer_first:
            wait_until(lambda: r.llen(tasks) >= 2, timeout=10, what="the producer's list of two tasks")
        else:
            a.wait_output("Queue size: 0", timeout=15)        # the worker waits for the missing key
        b = Proc([second] + args)
        producer, consumer = (a, b) if producer_first else (b, a)
        wait_until(lambda: len(lines_after(producer.output(), "Pushed: ")) >= 5, timeout=20, what="five pushes")
        producer.proc.kill()                                 # the seed's producer has no way out but a kill
        producer.proc.wait()
        pushed = lines_after(producer.output(), "Pushed: ")
        wait_until(lambda: len(lines_after(consumer.output(), "Processing task: ")) >= len(pushed), timeout=15,
                   what="every pushed task to be processed")
        consumer.proc.send_signal(2)                         # Ctrl-C: the worker finishes and exits 0
        assert consumer.wait(15) == 0, consumer.output()
        out = consumer.output()
        processed = lines_after(out, "Processing task: ")
        assert collections.Counter(processed) == collections.Counter(pushed), out
        assert max(collections.Counter(processed).values()) == 1, out
        assert "Traceback" not in out and "failed" not in out, out
        adopted = [ln for ln in out.splitlines() if "adopted the list" in ln]
        assert len(adopted) == 1 and "'tasks'" in adopted[0], out
        assert r.type(tasks) == b"OnceQueue"
        s = Once(r, tasks).stats()
        assert (s.ready, s.reserved, s.dead) == (0, 0, 0)
        assert s.acked_total == len(pushed)
    finally:
        for p in (a, b):
            if p is not None:
                p.close()


def test_worker_adopts_a_list_made_first_and_logs_one_line(r, queue, caplog):
    r.rpush(queue, "a", "b", "c")
    seen = []
    with caplog.at_level(logging.INFO, logger="once.worker"):
        with running_worker(Once(r, queue), seen.append, concurrency=3) as w:
            wait_until(lambda: len(seen) == 3, what="the three list items to run")
            r.rpush(queue, "d")                              # the producer goes on: a job now
            # Three handler threads finish in any order: d runs alone before the next push.
            wait_until(lambda: len(seen) == 4, what="the RPUSH after the adoption to run")
            r.lpush(queue, "f", "e")                         # LPUSH too, in the order pushed
            wait_until(lambda: len(seen) == 6, what="the later pushes to run")
            assert w.summary.processed == 6
    assert sorted(seen[:3]) == ["a", "b", "c"] and seen[3] == "d" and sorted(seen[4:]) == ["e", "f"]
    adopted = [rec.getMessage() for rec in caplog.records if "adopted" in rec.getMessage()]
    assert adopted == [f"once: adopted the list '{queue}': its 3 item(s) are jobs now, and RPUSH/LPUSH onto it "
                       f"add jobs from here on"]


def test_a_worker_of_several_queues_adopts_the_list_among_them(r, queue):
    urgent = queue + ":urgent"
    Once(r, urgent).push("u1")
    r.rpush(queue, "l1", "l2")
    seen = []
    with running_worker(Once(r, [urgent, queue]), lambda job: seen.append((job.queue, job.payload)), pass_job=True):
        wait_until(lambda: len(seen) == 3, what="all three jobs")
    assert seen[0] == (urgent, "u1") and sorted(seen[1:]) == [(queue, "l1"), (queue, "l2")]


def test_another_type_still_stops_the_worker_with_one_line(r, queue, caplog):
    r.hset(queue, "field", "value")
    w = Worker(Once(r, queue), lambda d: None, handle_signals=False, block_ms=200)
    with pytest.raises(WrongTypeError, match="holds a hash"):
        w.run()
    assert [rec.getMessage() for rec in caplog.records if rec.levelname == "ERROR"] == [
        f"once worker stopping: key '{queue}' holds a hash, not a Once queue: push jobs with ONCE.PUSH (Once.push)"]
    assert r.type(queue) == b"hash"


def test_a_list_arriving_while_the_worker_waits_is_adopted(r, queue):
    seen = []
    with running_worker(Once(r, queue), seen.append, block_ms=5000):
        wait_until(lambda: r.info("clients")["blocked_clients"] >= 1, what="the worker's blocked RESERVE")
        t0 = time.monotonic()
        r.rpush(queue, "x")                                  # the key is missing: a real RPUSH makes a list
        wait_until(lambda: seen == ["x"], timeout=5, what="the list item to run")
        assert time.monotonic() - t0 < 4
        r.rpush(queue, "y")
        wait_until(lambda: seen == ["x", "y"], what="the next push to run")
    assert r.type(queue) == b"OnceQueue"
