"""A queue key that holds another type is named plainly by the client, the worker and the CLI: "key 'tasks' holds a
hash, not a Once queue: push jobs with ONCE.PUSH (Once.push)". The worker waits while the key is missing and stops
with that one line, no traceback. (A list is the one type the worker does not stop on: it adopts it with ONCE.ADOPT,
so the seed's RPUSH producer keeps working: test_worker_list_producers.py.)"""
import os
import time

import pytest
import redis

from once_helpers import run_cli, url_of
from once import Once, Worker, WrongTypeError
from once_helpers import REPO_ROOT, Proc, wait_until

CONSUMER = os.path.join(REPO_ROOT, "examples", "task_consumer.py")


def line(key, held="list"):
    return f"key '{key}' holds a {held}, not a Once queue: push jobs with ONCE.PUSH (Once.push)"


@pytest.fixture
def r(server):
    c = server.client()
    yield c
    c.close()


@pytest.fixture
def tasks(r):
    """The seed's queue name, 'tasks', empty before and after the test."""
    r.delete("tasks")
    yield "tasks"
    r.delete("tasks")


def test_client_raises_a_typed_error_naming_the_type(r, queue):
    r.rpush(queue, "a")
    once = Once(r, queue)
    for call in (lambda: once.push("x"), lambda: once.reserve(), lambda: once.reserve(block_ms=100),
                 lambda: once.stats(), lambda: once.push("x", wait_replicas=1, wait_timeout_ms=10)):
        with pytest.raises(WrongTypeError) as err:
            call()
        assert str(err.value) == line(queue)
        assert isinstance(err.value, redis.ResponseError) and err.value.held == "list"
    r.delete(queue)
    r.set(queue, "s")
    with pytest.raises(WrongTypeError, match="holds a string, not a Once queue"):
        once.ack("some-id")
    assert r.type(queue) == b"string"                       # nothing was changed


def test_worker_object_raises_wrong_type_and_once_worker_exits(r, queue, caplog):
    r.hset(queue, "f", "v")
    w = Worker(Once(r, queue), lambda d: None, handle_signals=False, block_ms=200)
    with pytest.raises(WrongTypeError, match="holds a hash"):
        w.run()
    assert [rec.getMessage() for rec in caplog.records if rec.levelname == "ERROR"] == [
        f"once worker stopping: {line(queue, 'hash')}"]
    with pytest.raises(SystemExit) as ended:
        Once(r, queue).worker(lambda d: None, handle_signals=False, block_ms=200)
    assert ended.value.code == 1


def test_worker_blocked_on_a_queue_stops_when_a_hash_appears(r, queue):
    # A hash write does not wake a blocked RESERVE (only list and module writes signal the key), so the worker
    # learns at its next RESERVE, within block_ms.
    w = Worker(Once(r, queue), lambda d: None, handle_signals=False, block_ms=1000).start()
    try:
        wait_until(lambda: r.info("clients")["blocked_clients"] >= 1, timeout=5, what="the worker's blocked RESERVE")
        t0 = time.monotonic()
        r.hset(queue, "f", "from a hash writer")
        assert w.join(5.0), "the worker did not stop on the hash"
        assert time.monotonic() - t0 < 5.0
        assert isinstance(w.error, WrongTypeError) and str(w.error) == line(queue, 'hash')
    finally:
        w.stop()
        w.join(10)


def _consumer(server):
    return Proc([CONSUMER, "127.0.0.1", str(server.port)])


def test_seed_consumer_started_on_a_hash_says_one_line(server, r, tasks):
    r.hset(tasks, "f", "a hash where the queue should be")
    p = _consumer(server)
    try:
        assert p.wait(20) == 1
        out = p.output()
        assert [ln for ln in out.splitlines() if ln.strip()] == [f"once worker stopping: {line(tasks, 'hash')}"], out
    finally:
        p.close()
    assert r.hgetall(tasks) == {b"f": b"a hash where the queue should be"}


def test_seed_consumer_waits_for_a_missing_queue_then_stops_on_a_hash(server, r, tasks):
    p = _consumer(server)
    try:
        p.wait_output("Queue size: 0", timeout=15)          # the key is missing: it waits, monitoring says 0
        assert p.proc.poll() is None
        r.hset(tasks, "f", "a hash where the queue should be")
        assert p.wait(15) == 1
        out = p.output()
        assert "Traceback" not in out, out
        assert [ln for ln in out.splitlines() if ln.strip() and not ln.startswith("Queue size")] == [
            f"once worker stopping: {line(tasks, 'hash')}"], out
    finally:
        p.close()


def test_cli_names_the_type(server, r, queue):
    r.rpush(queue, "a")
    url = url_of(server)
    for args in (["stats", queue], ["list", queue, "ready"], ["inspect", queue, "x"], ["schedules", queue],
                 ["events", queue], ["purge", queue, "ready", "-y"], ["pause", queue]):
        p = run_cli(url, *args)
        assert p.returncode == 1, (args, p.stdout, p.stderr)
        assert p.stderr == f"once: {line(queue)}\n", (args, p.stderr)
    assert r.type(queue) == b"list" and r.llen(queue) == 1
