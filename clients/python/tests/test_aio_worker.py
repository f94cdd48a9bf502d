"""`once.aio.Worker` against real servers: a 5,000-job drain with concurrency 20 done exactly once and fetched in
batches; a raising handler retried then dead with its error; a handler slower than the lease kept alive; close()
during work and while idle; a cancel; a server restart mid-drain; a key of another type."""
import asyncio
import collections
import time

import harness
import pytest
import redis.asyncio
from once_helpers import command_calls

from once import PermanentError
from once.aio import Once, Worker, WrongTypeError


def run(coro):
    return asyncio.run(coro)


def aonce(server, queue):
    return Once(redis.asyncio.Redis(host="127.0.0.1", port=server.port), queue)


async def until(predicate, timeout=10.0, what="condition"):
    """Awaits the async `predicate` until it is truthy; fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value {value!r}")
        await asyncio.sleep(0.02)


async def acked(o, n):
    return (await o.stats()).acked_total >= n


def test_5000_jobs_with_concurrency_20_are_each_done_exactly_once(server, queue):
    c = server.client()
    n = 5000
    c.execute_command("ONCE.BULK", queue, "PAYLOADS", *[f"job {i}" for i in range(n)])
    reserves_before = command_calls(c, "once.reserve")
    seen = collections.Counter()
    most = 0

    async def main():
        nonlocal most
        o = aonce(server, queue)
        in_flight = 0

        async def handle(data):
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            await asyncio.sleep(0)
            seen[data] += 1
            in_flight -= 1

        w = Worker(o, handle, concurrency=20, block_ms=1000)
        task = asyncio.create_task(w.run())
        await until(lambda: acked(o, n), timeout=60, what=f"{n} acked jobs")
        await w.close()
        summary = await task
        stats = await o.stats()
        await o.redis.aclose()
        return summary, stats

    summary, stats = run(main())
    assert len(seen) == n and set(seen.values()) == {1}, "a job ran twice or never"
    assert summary.processed == n and summary.failed == 0 and summary.late_acks == 0
    assert (stats.ready, stats.reserved, stats.delayed, stats.dead, stats.acked_total) == (0, 0, 0, 0, n)
    assert 1 < most <= 20
    reserves = command_calls(c, "once.reserve") - reserves_before
    assert reserves < n / 4, f"{reserves} RESERVEs for {n} jobs: not fetched in batches"


def test_a_raising_handler_is_retried_then_dead_with_its_error(server, queue):
    c = server.client()
    job_id = c.execute_command("ONCE.PUSH", queue, "bad", "RETRIES", 2, "BACKOFF", 1).decode()
    perm_id = c.execute_command("ONCE.PUSH", queue, "permanent", "RETRIES", 5).decode()
    errors = []

    async def main():
        o = aonce(server, queue)

        async def handle(data):
            if data == "permanent":
                raise PermanentError("no use trying again")
            raise ValueError(f"cannot do {data}")

        async def on_error(job, exc):
            errors.append((job.payload, job.attempt, type(exc).__name__))

        w = Worker(o, handle, on_error, concurrency=4, block_ms=200)
        task = asyncio.create_task(w.run())
        await until(lambda: _dead(o, 2), what="both jobs dead")
        await w.close()
        summary = await task
        infos = [await o.inspect(job_id), await o.inspect(perm_id)]
        await o.redis.aclose()
        return summary, infos

    summary, (bad, perm) = run(main())
    assert sorted(e for e in errors if e[0] == "bad") == [("bad", a, "ValueError") for a in (1, 2, 3)]
    assert [e for e in errors if e[0] == "permanent"] == [("permanent", 1, "PermanentError")]
    assert bad.state == "dead" and bad.attempts == 3 and bad.last_error == "ValueError: cannot do bad"
    assert perm.state == "dead" and perm.attempts == 1 and perm.last_error == "PermanentError: no use trying again"
    assert summary.failed == 4 and summary.processed == 0


async def _dead(o, n):
    return (await o.stats()).dead >= n


def test_a_handler_slower_than_the_lease_keeps_its_job(server, queue):
    c = server.client()
    job_id = c.execute_command("ONCE.PUSH", queue, "slow").decode()

    async def main():
        o = aonce(server, queue)
        w = Worker(o, lambda data: asyncio.sleep(2.0), lease_ms=600, block_ms=200)
        task = asyncio.create_task(w.run())
        await until(lambda: acked(o, 1), timeout=10, what="the slow job acked")
        await w.close()
        summary = await task
        stats = await o.stats()
        await o.redis.aclose()
        return summary, stats

    summary, stats = run(main())
    assert summary.processed == 1 and summary.lease_lost == 0 and summary.late_acks == 0
    assert stats.expired_total == 0 and stats.reserved_total == 1, "the lease ran out: the job was given again"
    assert c.execute_command("ONCE.INSPECT", queue, job_id) is None


def test_close_during_work_finishes_and_acks_the_jobs_in_hand(server, queue):
    c = server.client()
    for i in range(20):
        c.execute_command("ONCE.PUSH", queue, f"job {i}")
    started, finished = [], []

    async def main():
        o = aonce(server, queue)

        async def handle(data):
            started.append(data)
            await asyncio.sleep(0.5)
            finished.append(data)

        w = Worker(o, handle, concurrency=8, block_ms=10000)
        task = asyncio.create_task(w.run())
        while len(started) < 8:
            await asyncio.sleep(0.01)
        await w.close()
        assert task.done()
        summary = await task
        stats = await o.stats()
        await o.redis.aclose()
        return summary, stats

    summary, stats = run(main())
    assert len(started) == 8 and sorted(finished) == sorted(started)
    assert summary.processed == 8
    assert (stats.acked_total, stats.reserved, stats.ready) == (8, 0, 12)


def test_close_while_idle_wakes_the_blocked_reserve(server, queue):
    async def main():
        o = aonce(server, queue)
        w = Worker(o, lambda data: None, block_ms=30000)
        task = asyncio.create_task(w.run())
        c = server.client()
        await until(lambda: _blocked_clients(c), what="the worker to block")
        t0 = time.monotonic()
        await w.close()
        elapsed = time.monotonic() - t0
        await task
        await o.redis.aclose()
        return elapsed

    elapsed = run(main())
    assert elapsed < 2, f"close() took {elapsed:.1f}s: the RESERVE was not woken"


async def _blocked_clients(c):
    return any("b" in x["flags"] for x in c.client_list())


def test_a_cancel_sends_the_jobs_in_hand_back_at_once(server, queue):
    c = server.client()
    ids = [c.execute_command("ONCE.PUSH", queue, f"job {i}", "RETRIES", 3).decode() for i in range(3)]
    started = []

    async def main():
        o = aonce(server, queue)

        async def handle(data):
            started.append(data)
            await asyncio.sleep(60)

        w = Worker(o, handle, concurrency=3, block_ms=1000)
        task = asyncio.create_task(w.run())
        while len(started) < 3:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        infos = [await o.inspect(i) for i in ids]
        await o.redis.aclose()
        return infos

    infos = run(main())
    assert all(i.state in ("ready", "delayed") and i.last_error.startswith("worker cancelled") for i in infos), infos


def test_a_server_restart_mid_drain(kind, queue):
    # AOF on, so that the jobs outlive the restart (the harness turns it off; a later argument wins)
    server = harness.Server(kind, extra=["--appendonly", "yes", "--appendfsync", "always"])
    n = 1000
    try:
        c = server.client()
        ids = {x.decode() for x in c.execute_command("ONCE.BULK", queue, "PAYLOADS",
                                                         *[f"job {i}" for i in range(n)])}
        done = collections.Counter()

        async def main():
            o = aonce(server, queue)

            async def handle(data):
                await asyncio.sleep(0.002)
                done[data] += 1

            w = Worker(o, handle, concurrency=10, block_ms=500, lease_ms=1000, max_backoff=0.3)
            task = asyncio.create_task(w.run())
            while sum(done.values()) < n // 4:
                await asyncio.sleep(0.01)
            await asyncio.to_thread(server.restart)             # same port and directory: the AOF is loaded
            assert not task.done()
            await until(lambda: _all_done(o, n), timeout=30, what="every job acked after the restart")
            await w.close()
            summary = await task
            await o.redis.aclose()
            return summary

        summary = run(main())
        # every job done; twice only the few in hand when the server went (their ACKs were lost with it)
        assert set(done) == {f"job {i}" for i in range(n)}
        assert sum(done.values()) - n <= 20, f"{sum(done.values()) - n} jobs ran twice"
        assert summary.processed == sum(done.values())
        assert all(c.execute_command("ONCE.INSPECT", queue, i) is None for i in ids)
    finally:
        server.close()


async def _all_done(o, n):
    s = await o.stats()
    return s.ready == s.delayed == s.reserved == 0 and s.acked_total > 0


def test_a_key_of_another_type_stops_the_worker_with_one_line(server, queue, caplog):
    server.client().set(queue, "a string")

    async def main():
        o = aonce(server, queue)
        with pytest.raises(WrongTypeError, match="holds a string, not a Once queue"):
            await Worker(o, lambda data: None, block_ms=200).run()
        with pytest.raises(SystemExit):
            await o.worker(lambda data: None, handle_signals=False, block_ms=200)
        await o.redis.aclose()

    run(main())


def test_a_worker_serves_one_queue():
    o = Once(redis.asyncio.Redis(), ["urgent", "normal"])
    with pytest.raises(ValueError, match="serves one queue"):
        Worker(o, lambda data: None)
